"""Reading lineage entries: of one execution, by filters, by message, along a chain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
)

from stageline.domain.status import StageStatus
from stageline.store.records import LineageRecord
from stageline.store.tables import lineage_entries

le = lineage_entries
# How far a chain is followed up or down: steps of a pipeline times replays
# of replays. A guard against runaway recursion more than a real limit.
MAX_CHAIN_DEPTH = 256


def for_execution(conn: Connection, execution_id: UUID,
                  limit: int) -> tuple[int, list[LineageRecord]]:
    """An execution's entries ordered by started_at, and how many there are in all."""
    total = conn.execute(select(func.count()).select_from(lineage_entries).where(
        lineage_entries.c.execution_id == execution_id)).scalar_one()
    rows = conn.execute(
        select(lineage_entries).where(lineage_entries.c.execution_id == execution_id)
        .order_by(lineage_entries.c.started_at, lineage_entries.c.id).limit(limit)
    )
    return total, [LineageRecord.from_row(r) for r in rows]


@dataclass(frozen=True)
class LineageFilter:
    """Conditions on lineage entries; all given ones must hold."""

    execution_id: UUID | None = None
    route_id: str | None = None
    stage_name: str | None = None
    stage_status: tuple[str, ...] = ()
    roots_only: bool = False
    meta: tuple[tuple[str, str], ...] = ()  # (key, value): meta[key] as text == value
    started_after: datetime | None = None
    started_before: datetime | None = None


def list_page(conn: Connection, tenant_id: UUID, flt: LineageFilter, limit: int,
              after: tuple[datetime, UUID] | None) -> list[LineageRecord]:
    """Oldest first by (started_at, id); `after` is that pair of the last row seen."""
    query = select(le).where(le.c.tenant_id == tenant_id, *_conditions(flt))
    if after is not None:
        started, last_id = after
        query = query.where(or_(le.c.started_at > started,
                                and_(le.c.started_at == started, le.c.id > last_id)))
    return _records(conn, query.order_by(le.c.started_at, le.c.id).limit(limit))


def _conditions(flt: LineageFilter) -> list[ColumnElement[bool]]:
    c = le.c
    conds: list[ColumnElement[bool]] = []
    if flt.execution_id is not None:
        conds.append(c.execution_id == flt.execution_id)
    if flt.route_id is not None:
        conds.append(c.route_id == flt.route_id)
    if flt.stage_name is not None:
        conds.append(c.stage_name == flt.stage_name)
    if flt.stage_status:
        conds.append(c.stage_status.in_(flt.stage_status))
    if flt.roots_only:
        # Collect messages have no parent either; only the input entry is a root.
        conds += [c.parent_correlation_id.is_(None), c.stage_status == StageStatus.INITIATED]
    # `as_string` is JSON_EXTRACT on SQLite and ->> on PostgreSQL: text on both.
    conds += [c.meta[key].as_string() == value for key, value in flt.meta]
    if flt.started_after is not None:
        conds.append(c.started_at >= flt.started_after)
    if flt.started_before is not None:
        conds.append(c.started_at < flt.started_before)
    return conds


def attempts(conn: Connection, tenant_id: UUID, correlation_id: str,
             limit: int) -> list[LineageRecord]:
    """Every attempt of one message, first attempt first."""
    query = (select(le).where(le.c.tenant_id == tenant_id, le.c.correlation_id == correlation_id)
             .order_by(le.c.attempt, le.c.started_at, le.c.id).limit(limit))
    return _records(conn, query)


@dataclass(frozen=True)
class Chain:
    """An item's lineage: where it came from, its own attempts, what it produced."""

    ancestors: list[LineageRecord]  # root first
    entries: list[LineageRecord]
    descendants: list[LineageRecord]  # nearest first
    truncated: bool


def chain(conn: Connection, tenant_id: UUID, correlation_id: str, limit: int) -> Chain | None:
    """The chain around one message, each list bounded by `limit`; None if unknown.

    Past the limit, the entries nearest the message are the ones kept.
    """
    entries = attempts(conn, tenant_id, correlation_id, limit)
    if not entries:
        return None
    up = _along(conn, _ancestors(tenant_id, correlation_id), tenant_id, limit + 1)
    down = _along(conn, _descendants(tenant_id, correlation_id), tenant_id, limit + 1)
    deepest = max((depth for depth, _ in (*up, *down)), default=0)
    truncated = len(up) > limit or len(down) > limit or deepest >= MAX_CHAIN_DEPTH
    root_first = sorted(up[:limit], key=lambda p: (-p[0], p[1].started_at, p[1].id))
    return Chain([e for _, e in root_first], entries, [e for _, e in down[:limit]], truncated)


def _ancestors(tenant_id: UUID, correlation_id: str) -> CTE:
    """Correlation ids above the message, with their distance from it."""
    start = (select(le.c.parent_correlation_id.label("cid"), literal(1).label("depth"))
             .where(le.c.tenant_id == tenant_id, le.c.correlation_id == correlation_id,
                    le.c.parent_correlation_id.is_not(None))
             .cte("ancestors", recursive=True))
    parent = le.alias("parent")
    # UNION, not UNION ALL: the attempts of one message add its parent once.
    return start.union(
        select(parent.c.parent_correlation_id, start.c.depth + 1)
        .where(parent.c.tenant_id == tenant_id, parent.c.correlation_id == start.c.cid,
               parent.c.parent_correlation_id.is_not(None), start.c.depth < MAX_CHAIN_DEPTH))


def _descendants(tenant_id: UUID, correlation_id: str) -> CTE:
    """Correlation ids produced from the message, recursively, with their distance."""
    start = (select(le.c.correlation_id.label("cid"), literal(1).label("depth"))
             .where(le.c.tenant_id == tenant_id, le.c.parent_correlation_id == correlation_id)
             .cte("descendants", recursive=True))
    child = le.alias("child")
    return start.union(
        select(child.c.correlation_id, start.c.depth + 1)
        .where(child.c.tenant_id == tenant_id, child.c.parent_correlation_id == start.c.cid,
               start.c.depth < MAX_CHAIN_DEPTH))


def _along(conn: Connection, ids: CTE, tenant_id: UUID,
           limit: int) -> list[tuple[int, LineageRecord]]:
    """The entries of the correlation ids in `ids` with their distance, nearest first."""
    query = (select(le, ids.c.depth.label("chain_depth"))
             .join(ids, le.c.correlation_id == ids.c.cid).where(le.c.tenant_id == tenant_id)
             .order_by(ids.c.depth, le.c.started_at, le.c.id).limit(limit))
    return [(r.chain_depth, LineageRecord.from_row(r)) for r in conn.execute(query)]


def _records(conn: Connection, query: Select[Any]) -> list[LineageRecord]:
    return [LineageRecord.from_row(r) for r in conn.execute(query)]
