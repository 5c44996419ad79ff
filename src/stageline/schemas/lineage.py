"""Seed 000: lineage entries of an execution."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self
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

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Self:
        """An entry of values for every field, that fit it already (the store's rows).

        What `model_construct` makes of them, without its pass over each field's
        aliases and defaults: pages hold up to 10,000 entries.
        """
        entry = cls.__new__(cls)
        object.__setattr__(entry, "__dict__", values)
        # Shared: every field is set, and pydantic only ever adds set fields to it.
        object.__setattr__(entry, "__pydantic_fields_set__", _EVERY_FIELD)
        object.__setattr__(entry, "__pydantic_extra__", None)
        object.__setattr__(entry, "__pydantic_private__", None)
        return entry


_EVERY_FIELD = set(LineageEntryResponse.model_fields)


class ExecutionLineageResponse(BaseModel):
    """Lineage entries for a specific execution."""

    total: int = Field(description="Total number of lineage entries")
    execution_id: UUID = Field(description="Execution ID these entries belong to")
    entries: list[LineageEntryResponse] = Field(description="List of lineage entries")
