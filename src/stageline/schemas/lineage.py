"""Seed 000: lineage entries of an execution."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

StageStatusLiteral = Literal["pending", "initiated", "processing", "completed", "failed",
                             "cancelled"]


class LineageEntryResponse(BaseModel):
    """Pipeline lineage entry response."""

    id: UUID = Field(description="Lineage entry UUID")
    correlation_id: str = Field(description="Correlation ID for this processing attempt")
    parent_correlation_id: str | None = None
    replay_batch_id: str | None = None
    execution_id: UUID | None = None
    route_id: str | None = None
    adapter_name: str | None = None
    adapter_index: int | None = None
    stage_name: str = Field(description="Stage name")
    stage_status: StageStatusLiteral = Field(description="Current status of this stage")
    stage_input_hash: str | None = None
    started_at: datetime = Field(description="When processing started")
    completed_at: datetime | None = None
    duration_ms: float | None = None
    metadata: dict[str, Any] | None = None
    error_info: dict[str, Any] | None = None


class ExecutionLineageResponse(BaseModel):
    """Lineage entries for a specific execution."""

    total: int = Field(description="Total number of lineage entries")
    execution_id: UUID = Field(description="Execution ID these entries belong to")
    entries: list[LineageEntryResponse] = Field(description="List of lineage entries")
