"""Rows as typed records, one dataclass per table that the layers above read."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self
from uuid import UUID

from sqlalchemy import Row


class _FromRow:
    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        mapping = row._mapping
        return cls(**{f.name: mapping[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class ExecutionRecord(_FromRow):
    id: UUID
    tenant_id: UUID
    pipeline_id: UUID
    config_id: UUID
    status: str
    tag: str | None
    idempotency_key: str | None
    payload: Any
    meta: dict[str, Any] | None
    result: Any
    error: str | None
    error_info: dict[str, Any] | None
    parent_execution_id: UUID | None
    root_execution_id: UUID | None
    replay_source: str | None
    replay_batch_id: str | None
    replay_request: dict[str, Any] | None
    source_key: str | None
    queue_name: str | None
    concurrency_key: str | None
    run_timeout_seconds: int | None
    retry_count: int
    assigned_to_worker: str | None
    batch_id: str | None
    deployment_id: str | None
    session_id: str | None
    user_id: str | None
    step_key: str | None
    output_schema_name: str | None
    skip_cache: bool
    cancelled_at: datetime | None
    cancelled_by: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class StepRunRecord(_FromRow):
    execution_id: UUID
    step_index: int
    step_type: str
    input_stage: str
    output_stage: str
    status: str
    outstanding: int
    completed: int
    failed: int
    attempts: int
    handler_seconds: float
    started_at: datetime | None
    finished_at: datetime | None
    error_message: str | None
    error: dict[str, Any] | None
    decision: dict[str, Any] | None
    source_step_type: str | None
    source_execution_id: UUID | None
    checkpoint_id: str | None


@dataclass(frozen=True)
class LineageRecord(_FromRow):
    id: UUID
    tenant_id: UUID
    correlation_id: str
    parent_correlation_id: str | None
    replay_batch_id: str | None
    execution_id: UUID
    route_id: str | None
    adapter_name: str | None
    adapter_index: int | None
    stage_name: str
    stage_status: str
    stage_input_hash: str | None
    item_key: str | None
    attempt: int
    started_at: datetime
    completed_at: datetime | None
    duration_ms: float | None
    meta: dict[str, Any] | None
    error_info: dict[str, Any] | None
