"""Comparing two executions: what a fix changed, before trusting it."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from sqlalchemy import Connection

from stageline.api.deps import RuntimeDep, TenantDep
from stageline.api.errors import ApiError
from stageline.domain.diff import Change, StageDiff, diff_stage, unified
from stageline.runtime import Runtime
from stageline.schemas.diff import (
    ExecutionDiffResponse,
    ItemChangeResponse,
    ItemDiffResponse,
    StageDiffResponse,
)
from stageline.schemas.errors import ErrorResponse, HTTPValidationError
from stageline.store import executions
from stageline.store.stages import read_stage, stage_hashes, stage_names

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
    422: {"model": HTTPValidationError},
}
router = APIRouter(prefix="/api/v1/executions", tags=["replay"], responses=ERRORS)


@router.get("/{a}/diff/{b}", response_model=ExecutionDiffResponse)
def diff_executions(
    a: str, b: str, runtime: RuntimeDep, tenant: TenantDep,
    stage: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    key: Annotated[str | None, Query(max_length=512,
                                     description="With stage: one item's unified diff")] = None,
) -> ExecutionDiffResponse:
    """Per stage, the items added, removed and changed from `a` to `b` (ids or
    tags), matched by key and compared by content hash."""
    if key is not None and stage is None:
        raise ApiError(400, "stage_required", "a unified diff of one item needs `stage`")
    with runtime.db.read() as conn:
        first = executions.resolve(conn, tenant, a)
        second = executions.resolve(conn, tenant, b)
        names = _stages(stage_names(conn, first.id), stage_names(conn, second.id))
        if stage is not None:
            if stage not in names:
                raise ApiError(404, "stage_not_found", f"neither execution has stage {stage!r}")
            names = [stage]
        diffs = [diff_stage(s, stage_hashes(conn, first.id, s), stage_hashes(conn, second.id, s))
                 for s in names]
        item = None
        if key is not None and stage is not None:
            item = _item_diff(runtime, conn, first.id, second.id, stage, key, diffs[0])
    return ExecutionDiffResponse(a=first.id, b=second.id,
                                 stages=[_page(d, limit, cursor) for d in diffs], item=item)


def _stages(a: list[str], b: list[str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


def _page(diff: StageDiff, limit: int, cursor: str | None) -> StageDiffResponse:
    items = [i for i in diff.items if cursor is None or i.key > cursor]
    page = items[:limit]
    return StageDiffResponse(
        stage=diff.stage, added=diff.counts[Change.ADDED], removed=diff.counts[Change.REMOVED],
        changed=diff.counts[Change.CHANGED], unchanged=diff.counts[Change.UNCHANGED],
        items=[ItemChangeResponse(key=i.key, change=i.change.value, a_hash=i.a_hash,
                                  b_hash=i.b_hash) for i in page],
        next_cursor=page[-1].key if len(items) > limit else None,
    )


def _item_diff(runtime: Runtime, conn: Connection, a: UUID, b: UUID, stage: str, key: str,
               diff: StageDiff) -> ItemDiffResponse:
    values = []
    for execution_id in (a, b):
        found = [i for i in read_stage(conn, execution_id, stage, prefix=key) if i.key == key]
        values.append(found[0].load(runtime.blobs) if found else None)
    if values[0] is None and values[1] is None:
        raise ApiError(404, "item_not_found", f"no item {key!r} in stage {stage!r}")
    change = next((i.change.value for i in diff.items if i.key == key), "unchanged")
    return ItemDiffResponse(stage=stage, key=key, change=change,
                            unified=unified(values[0], values[1], f"a/{stage}/{key}",
                                            f"b/{stage}/{key}"))
