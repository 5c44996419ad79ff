"""Lineage across executions: filtered lists, one message's attempts, an item's chain."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from stageline.schemas.lineage import LineageEntryResponse, StageStatusLiteral


class LineageList(BaseModel):
    """One page of lineage entries, oldest first by (started_at, id)."""

    items: list[LineageEntryResponse] = Field(description="Lineage entries of this page")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to read the next page; null on the last")


class LineageAttempts(BaseModel):
    """Every attempt recorded for one message, first attempt first."""

    correlation_id: str = Field(description="Correlation ID of the message")
    total: int = Field(description="Number of attempts returned")
    entries: list[LineageEntryResponse] = Field(description="The message's attempts")


class LineageChain(BaseModel):
    """Where an item came from and what became of it, across steps and executions.

    Follows `parent_correlation_id` up to the execution's `initiated` input
    entry, and down through every message produced from this one, including
    the messages of replays (whose parent is an item of the replayed execution).
    """

    correlation_id: str = Field(description="Correlation ID the chain is centred on")
    ancestors: list[LineageEntryResponse] = Field(
        description="Attempts of the messages this item descends from, root first")
    entries: list[LineageEntryResponse] = Field(
        description="Attempts of this message, first attempt first")
    descendants: list[LineageEntryResponse] = Field(
        description="Attempts of the messages produced from this one, nearest first; each "
                    "names its parent in `parent_correlation_id`")
    truncated: bool = Field(
        description="True when the chain had more entries than `limit` allowed in a list, "
                    "or was deeper than the service follows")


MetaCondition = Annotated[str, StringConstraints(
    pattern=r"^[A-Za-z0-9_.\-]{1,64}:[^\x00]{0,500}$", max_length=565)]


class LineageQuery(BaseModel):
    """Query parameters of `GET /api/v1/lineage`; every given filter must hold."""

    model_config = ConfigDict(extra="forbid")

    execution_id: str | None = Field(default=None, min_length=1, max_length=200,
                                     description="Execution id or tag")
    route_id: str | None = Field(default=None, max_length=128, description="Step (route) name")
    stage_name: str | None = Field(default=None, max_length=128, description="Stage name")
    stage_status: list[StageStatusLiteral] = Field(
        default_factory=list, max_length=6, description="Any of these statuses (repeatable)")
    roots_only: bool = Field(
        default=False, description="Only the `initiated` entries of executions' inputs")
    meta: list[MetaCondition] = Field(
        default_factory=list, max_length=10,
        description="`key:value`, repeatable: the entry's metadata field `key` equals `value` "
                    "(compared as text)")
    started_after: AwareDatetime | None = Field(
        default=None, description="Started at or after this instant (with a UTC offset)")
    started_before: AwareDatetime | None = Field(
        default=None, description="Started before this instant (with a UTC offset)")
    limit: int = Field(default=100, ge=1, le=1000, description="Maximum results")
    cursor: str | None = Field(default=None, max_length=200,
                               description="`next_cursor` of the previous page")

    def meta_pairs(self) -> tuple[tuple[str, str], ...]:
        """The `meta` conditions as (key, value): the key ends at the first colon."""
        return tuple((key, value) for key, _, value in (m.partition(":") for m in self.meta))
