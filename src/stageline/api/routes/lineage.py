"""Lineage across executions: filtered lists, one message's attempts, an item's chain."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import pydantic_core
from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import Connection

from stageline.api import cursor as cursors
from stageline.api.deps import RuntimeDep, TenantDep
from stageline.api.errors import ApiError
from stageline.api.views import lineage_entry_fields
from stageline.schemas.errors import NOT_FOUND_OR_INVALID, ErrorResponse
from stageline.schemas.lineage_queries import (
    LineageAttempts,
    LineageChain,
    LineageList,
    LineageQuery,
)
from stageline.store import executions, lineage
from stageline.store.lineage import LineageFilter
from stageline.store.records import LineageRecord

ERRORS = NOT_FOUND_OR_INVALID
router = APIRouter(prefix="/api/v1/lineage", tags=["lineage"], responses=ERRORS)

CorrelationId = Annotated[str, Path(min_length=1, max_length=64,
                                    description="Correlation ID of a message")]


@router.get("", response_model=LineageList, responses={400: {"model": ErrorResponse}})
def list_lineage(query: Annotated[LineageQuery, Query()], runtime: RuntimeDep,
                 tenant: TenantDep) -> Response:
    """Lineage entries of every execution, filtered, oldest first, with a cursor."""
    after = cursors.decode(query.cursor) if query.cursor else None
    with runtime.db.read() as conn:
        flt = _filter(conn, tenant, query)
        rows = lineage.list_page(conn, tenant, flt, query.limit + 1, after)
    page = rows[:query.limit]
    more = len(rows) > query.limit
    return _json({"items": _entries(page),
                  "next_cursor": cursors.encode(page[-1].started_at, page[-1].id)
                  if more else None})


def _filter(conn: Connection, tenant: UUID, query: LineageQuery) -> LineageFilter:
    execution_id = None
    if query.execution_id is not None:
        execution_id = executions.resolve(conn, tenant, query.execution_id).id
    return LineageFilter(
        execution_id=execution_id, route_id=query.route_id, stage_name=query.stage_name,
        stage_status=tuple(query.stage_status), roots_only=query.roots_only,
        meta=query.meta_pairs(), started_after=query.started_after,
        started_before=query.started_before,
    )


@router.get("/{correlation_id}", response_model=LineageAttempts)
def get_lineage_attempts(
    correlation_id: CorrelationId, runtime: RuntimeDep, tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Maximum results")] = 100,
) -> Response:
    """Every attempt recorded for one message (retries and lost leases included)."""
    with runtime.db.read() as conn:
        entries = lineage.attempts(conn, tenant, correlation_id, limit)
    if not entries:
        raise _unknown(correlation_id)
    return _json({"correlation_id": correlation_id, "total": len(entries),
                  "entries": _entries(entries)})


@router.get("/{correlation_id}/chain", response_model=LineageChain)
def get_lineage_chain(
    correlation_id: CorrelationId, runtime: RuntimeDep, tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=10000,
                                description="Maximum entries per list")] = 1000,
) -> Response:
    """Which input produced this item, and what happened to it and its products at
    every step, across replays."""
    with runtime.db.read() as conn:
        found = lineage.chain(conn, tenant, correlation_id, limit)
    if found is None:
        raise _unknown(correlation_id)
    return _json({"correlation_id": correlation_id, "ancestors": _entries(found.ancestors),
                  "entries": _entries(found.entries),
                  "descendants": _entries(found.descendants), "truncated": found.truncated})


# The routes answer with the JSON of their response model, built from plain
# values: validating and serialising up to 3 x 10,000 entry models cost more
# than the queries. The tests hold it to the models' own JSON.


def _entries(records: list[LineageRecord]) -> list[dict[str, Any]]:
    return [lineage_entry_fields(r) for r in records]


def _json(body: dict[str, Any]) -> Response:
    # pydantic's own serialiser: the same JSON as the models give (UUIDs, times with Z).
    return Response(pydantic_core.to_json(body), media_type="application/json")


def _unknown(correlation_id: str) -> ApiError:
    return ApiError(404, "lineage_not_found",
                    f"no lineage entry with correlation id {correlation_id!r}")
