"""Comparing two executions."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field


class ItemChangeResponse(BaseModel):
    key: str = Field(description="Item key: matches items by their lineage origin")
    change: Literal["added", "removed", "changed"]
    a_hash: str | None = None
    b_hash: str | None = None


class StageDiffResponse(BaseModel):
    stage: str
    added: int
    removed: int
    changed: int
    unchanged: int
    items: list[ItemChangeResponse] = Field(description="Changed items, in key order")
    next_cursor: str | None = Field(default=None, description="Key to continue after")


class ItemDiffResponse(BaseModel):
    stage: str
    key: str
    change: Literal["added", "removed", "changed", "unchanged"]
    unified: str = Field(description="Unified diff of the two values as text")


class ExecutionDiffResponse(BaseModel):
    """What changed between execution `a` and execution `b`, stage by stage."""

    a: UUID
    b: UUID
    stages: list[StageDiffResponse]
    item: ItemDiffResponse | None = None
