"""Executions: the start request, seed 002's ExecutionResponse and seed 004's detail."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Seed002Status = Literal["running", "completed", "failed", "cancelled", "interrupted"]
ReplaySource = Literal["storage", "lineage", "manual"]
Label = Field(default=None, max_length=200)


def storable_json(value: Any) -> Any:
    """A value the store can keep exactly: JSON with finite numbers that fit in
    64 bits (larger integers and NaN would be refused or silently changed)."""
    try:
        orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER)
    except TypeError as exc:
        raise ValueError(f"not storable as JSON: {exc}") from exc
    if _non_finite(value):
        raise ValueError("NaN and Infinity are not JSON numbers")
    return value


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


class ExecutionCreate(BaseModel):
    """Start an execution of a pipeline (by name and optional version, or by config_id)."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str | None = Field(default=None, min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    config_id: UUID | None = None
    input: Any = None
    tag: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    run_timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 86400)
    skip_cache: bool = False
    batch_id: str | None = Label
    deployment_id: str | None = Label
    session_id: str | None = Label
    user_id: str | None = Label
    step_key: str | None = Label
    output_schema_name: str | None = Label

    @field_validator("input", "metadata")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable_json(value)

    @model_validator(mode="after")
    def _one_target(self) -> ExecutionCreate:
        if (self.pipeline is None) == (self.config_id is None):
            raise ValueError("give either 'pipeline' (with optional 'version') or 'config_id'")
        if self.config_id is not None and self.version is not None:
            raise ValueError("'version' goes with 'pipeline', not with 'config_id'")
        return self


class StepCounts(BaseModel):
    step_index: int
    step_type: str
    status: str
    outstanding: int
    completed: int
    failed: int
    attempts: int


class ExecutionResponse(BaseModel):
    """Pipeline execution response (seed 002)."""

    id: UUID = Field(description="Execution UUID (used for storage paths)")
    config_id: UUID = Field(description="Configuration ID")
    status: Seed002Status = Field(description="Current status")
    started_at: datetime = Field(description="Start timestamp")
    completed_at: datetime | None = None
    parent_execution_id: UUID | None = None
    replay_source: ReplaySource | None = None
    tag: str | None = None


class ExecutionDetail(BaseModel):
    """An execution with seed 004's fields and seed 002's, plus Stageline's own."""

    # seed 004
    created_at: str
    id: str
    payload: Any
    retry_count: int
    status: str = Field(description="pending, running, completed, failed, cancelled")
    workflow_id: str
    assigned_to_worker: str | None = None
    batch_id: str | None = None
    cancelled_at: str | None = None
    cancelled_by: str | None = None
    completed_at: str | None = None
    concurrency_key: str | None = None
    deployment_id: str | None = None
    error: str | None = None
    output_schema_name: str | None = None
    parent_execution_id: str | None = None
    queue_name: str | None = None
    result: Any = None
    root_execution_id: str | None = None
    run_timeout_seconds: int | None = None
    session_id: str | None = None
    started_at: str | None = None
    step_key: str | None = None
    user_id: str | None = None
    # seed 002
    config_id: str
    replay_source: ReplaySource | None = None
    tag: str | None = None
    # Stageline
    stageline_status: str = Field(description="the full status: SPEC.md's vocabulary")
    pipeline: str
    pipeline_version: int
    metadata: dict[str, Any] | None = None
    config_snapshot: dict[str, Any] | None = None
    error_info: dict[str, Any] | None = None
    steps: list[StepCounts] = Field(default_factory=list)


class ExecutionList(BaseModel):
    items: list[ExecutionDetail]
    next_cursor: str | None = None


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cancelled_by: str | None = Field(default=None, max_length=200)


class ReviewAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "reject"]
    description: str | None = Field(default=None, max_length=10000)
    author_id: str | None = Field(default=None, max_length=200)
    author_email: str | None = Field(default=None, max_length=320)
