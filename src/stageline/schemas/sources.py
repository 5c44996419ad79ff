"""Sources (named input channels bound to a pipeline) and seed 001's pipeline
execution, as the source that started it sees it. Seed 001 names its fields
in camelCase; so do these models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SOURCE_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
Seed001Status = Literal["SUCCESSFUL", "ERROR", "IN_PROGRESS", "IN_REVIEW", "CANCELLED",
                        "DROPPED"]
Seed001StepStatus = Literal["PENDING", "IN_PROGRESS", "IN_REVIEW", "PROCESSED", "ERROR",
                            "CANCELLED", "SKIPPED"]


class SourceCreate(BaseModel):
    """Create a source: a named input channel of the tenant, bound to a pipeline."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=SOURCE_KEY_PATTERN, description="Unique per tenant; used in URLs")
    pipeline: str = Field(min_length=1, max_length=128,
                          description="Executions started through the source run its latest "
                                      "version")


class SourceResponse(BaseModel):
    """A source and where its executions are."""

    key: str
    pipeline: str
    pipeline_id: str
    created_at: datetime
    executions_url: str


class SourceList(BaseModel):
    items: list[SourceResponse]
    next_cursor: str | None = None


class OperationTarget(BaseModel):
    """What an operation acts on."""

    targetType: str = Field(min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=512)
    type: str = Field(min_length=1, max_length=200)


class OperationInput(BaseModel):
    """An execution input shaped as an operation (it has action, target and body)."""

    taskId: str | None = Field(default=None, min_length=1, max_length=200)
    action: str = Field(min_length=1, max_length=64)
    target: OperationTarget
    body: Any = None


class Operation(BaseModel):
    """The operation that triggered an execution, or the one it produced."""

    taskId: str
    action: str
    target: OperationTarget
    body: Any = Field(default=None, description="Only with withOperationBody=true")


class DecisionAuthor(BaseModel):
    id: str | None = None
    email: str | None = None


class PipelineExecutionDecision(BaseModel):
    """A review decision recorded on a step."""

    id: str
    description: str | None = None
    author: DecisionAuthor
    actedAt: datetime | None = None


class PipelineExecutionError(BaseModel):
    """Why a step failed; `details` has one entry per item that failed for good."""

    code: int
    message: str
    type: str
    details: list[dict[str, Any]]


class PipelineExecutionStep(BaseModel):
    status: Seed001StepStatus
    error: PipelineExecutionError | None = None
    decision: PipelineExecutionDecision | None = None
    processedAt: datetime | None = None


class PipelineExecution(BaseModel):
    """A pipeline execution with its review decisions and operations (seed 001)."""

    id: str = Field(description="id to refer for a specific pipeline execution")
    pipelineDefinitionId: str = Field(
        description="versioned id to the related pipeline definition (the config id)")
    status: Seed001Status
    steps: list[PipelineExecutionStep]
    operation: Operation = Field(
        description="The initial operation that triggered the pipeline execution")
    processedOperation: Operation | None = Field(
        default=None,
        description="The operation processed by the pipeline: the output of the last "
                    "completed step, the final output once it is done")
    createdAt: datetime
    updatedAt: datetime


class PipelineExecutionList(BaseModel):
    """A source's executions, newest first."""

    data: list[PipelineExecution]
    nextCursor: str | None = None
