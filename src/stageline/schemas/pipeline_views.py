"""Seed 003: a pipeline execution polled for per-step status, and the pages of
stage items that a step's `result_url` answers (partial results)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

ItemEncoding = Literal["json", "base64"]


class PipelineExecutionStepResponse(BaseModel):
    """One step of a pipeline execution (seed 003)."""

    step_index: int
    step_type: str
    status: str = Field(description="pending, dispatched, running, completed or failed")
    lookup_key: str | None = Field(
        default=None,
        description="Storage prefix of the step's output items; set once its first item exists",
    )
    result_url: str | None = Field(
        default=None,
        description="API address of the step's output items, paginated; set with lookup_key",
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error_message: str | None = None
    source_step_type: str | None = Field(
        default=None, description="For a stage copied from the parent in a replay: its step"
    )
    checkpoint_id: str | None = None


class PipelineExecutionResponse(BaseModel):
    """A pipeline execution with per-step status and lookup keys (seed 003)."""

    execution_id: str
    pipeline_id: str
    pipeline_version: int
    status: str = Field(description="pending, running, completed, completed_with_errors or failed")
    steps: list[PipelineExecutionStepResponse]
    started_at: datetime | None = None
    completed_at: datetime | None = None
    created: datetime | None = None
    config_snapshot: dict[str, Any] | None = None
    input_config: dict[str, Any] | None = Field(
        default=None, description="The execution's input payload, metadata and options"
    )
    rate_breakdown: dict[str, Any] | None = Field(
        default=None, description="What the run cost: items, attempts and handler seconds per step"
    )


class StepResultItem(BaseModel):
    """One item of a step's output stage."""

    key: str = Field(description="Item key; pages are ordered by it")
    content_type: str
    size: int = Field(description="Size of the encoded item in bytes")
    content_hash: str
    correlation_id: str | None = Field(
        default=None, description="The message whose processing produced the item"
    )
    created_at: datetime
    value: Any = Field(
        default=None, description="The decoded JSON value, or base64 text for a bytes item"
    )
    encoding: ItemEncoding = Field(
        description="json, or base64 for an application/octet-stream item"
    )


class StepResultPage(BaseModel):
    """A page of a step's output items, by item key."""

    execution_id: str
    step_index: int
    step_type: str
    stage: str
    status: str = Field(description="The step's status, in seed 003's vocabulary")
    lookup_key: str | None = None
    items: list[StepResultItem]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last one"
    )
