"""Reading lineage entries: of one execution, by filters, by message, along a chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
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
    type_coerce,
)
from sqlalchemy.types import NullType

from stageline.domain.status import StageStatus
from stageline.store.records import LineageRecord
from stageline.store.tables import lineage_entries

le = lineage_entries
# How far a chain is followed up or down: steps of a pipeline times replays
# of replays. A guard against runaway recursion more than a real limit.
MAX_CHAIN_DEPTH = 256

# Pages hold up to 10,000 entries. Their ids and times are read as the driver
# gives them (text, on SQLite) and decoded by `_record`, which makes one UUID
# of the tenant and of the execution that all rows of a page repeat; read
# through their column types, each value would cost a processor call.
_DECODED = {"id", "tenant_id", "execution_id", "started_at", "completed_at"}
# In the order of the record's fields, which `_record` passes positionally.
_RECORD_COLUMNS = tuple(
    type_coerce(le.c[f.name], NullType()).label(f.name) if f.name in _DECODED else le.c[f.name]
    for f in fields(LineageRecord))


def for_execution(conn: Connection, execution_id: UUID,
                  limit: int) -> tuple[int, list[LineageRecord]]:
    """An execution's entries ordered by started_at, and how many there are in all."""
    # The count rides along with the page: one round trip, not two.
    counted = le.alias("counted")
    total = (select(func.count()).select_from(counted)
             .where(counted.c.execution_id == execution_id).scalar_subquery())
    rows = conn.execute(select(total, *_RECORD_COLUMNS).where(le.c.execution_id == execution_id)
                        .order_by(le.c.started_at, le.c.id).limit(limit)).all()
    if not rows:
        return conn.execute(select(total)).scalar_one(), []
    known: dict[str, UUID] = {}
    return rows[0][0], [_record(row[1:], known) for row in rows]


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
    query = select(*_RECORD_COLUMNS).where(le.c.tenant_id == tenant_id, *_conditions(flt))
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
    query = (select(*_RECORD_COLUMNS)
             .where(le.c.tenant_id == tenant_id, le.c.correlation_id == correlation_id)
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
    up = _along(conn, _ancestors(tenant_id, correlation_id), limit + 1)
    down = _along(conn, _descendants(tenant_id, correlation_id), limit + 1)
    deepest = max((depth for depth, _ in (*up, *down)), default=0)
    truncated = len(up) > limit or len(down) > limit or deepest >= MAX_CHAIN_DEPTH
    root_first = sorted(up[:limit], key=lambda p: (-p[0], p[1].started_at, p[1].id))
    return Chain([e for _, e in root_first], entries, [e for _, e in down[:limit]], truncated)


# Each row of a walk carries the tenant, and every lookup joins on it with the
# correlation id: a constant tenant condition on the searched table instead
# makes SQLite (3.38+, with ANALYZE statistics) build a Bloom filter over all
# of lineage_entries before each recursive step and before the final join, a
# pass over the whole table where the index finds the few rows wanted.


def _ancestors(tenant_id: UUID, correlation_id: str) -> CTE:
    """Correlation ids above the message, with their distance from it."""
    start = (select(le.c.parent_correlation_id.label("cid"), literal(1).label("depth"),
                    le.c.tenant_id)
             .where(le.c.tenant_id == tenant_id, le.c.correlation_id == correlation_id,
                    le.c.parent_correlation_id.is_not(None))
             .cte("ancestors", recursive=True))
    parent = le.alias("parent")
    # UNION, not UNION ALL: the attempts of one message add its parent once. A
    # root adds a NULL cid, which matches no entry and ends its walk.
    return start.union(
        select(parent.c.parent_correlation_id, start.c.depth + 1, start.c.tenant_id)
        .where(parent.c.correlation_id == start.c.cid, parent.c.tenant_id == start.c.tenant_id,
               start.c.depth < MAX_CHAIN_DEPTH))


def _descendants(tenant_id: UUID, correlation_id: str) -> CTE:
    """Correlation ids produced from the message, recursively, with their distance."""
    start = (select(le.c.correlation_id.label("cid"), literal(1).label("depth"), le.c.tenant_id)
             .where(le.c.tenant_id == tenant_id, le.c.parent_correlation_id == correlation_id)
             .cte("descendants", recursive=True))
    child = le.alias("child")
    return start.union(
        select(child.c.correlation_id, start.c.depth + 1, start.c.tenant_id)
        .where(child.c.parent_correlation_id == start.c.cid, child.c.tenant_id == start.c.tenant_id,
               start.c.depth < MAX_CHAIN_DEPTH))


def _along(conn: Connection, ids: CTE, limit: int) -> list[tuple[int, LineageRecord]]:
    """The entries of the correlation ids in `ids` with their distance, nearest first."""
    query = (select(ids.c.depth, *_RECORD_COLUMNS).select_from(ids)
             .join(le, and_(le.c.correlation_id == ids.c.cid, le.c.tenant_id == ids.c.tenant_id))
             .order_by(ids.c.depth, le.c.started_at, le.c.id).limit(limit))
    known: dict[str, UUID] = {}
    return [(depth, _record(row, known)) for depth, *row in conn.execute(query).all()]


def _records(conn: Connection, query: Select[Any]) -> list[LineageRecord]:
    """The records of a query that selects `_RECORD_COLUMNS`."""
    known: dict[str, UUID] = {}
    return [_record(row, known) for row in conn.execute(query).all()]


def _record(row: Sequence[Any], known: dict[str, UUID]) -> LineageRecord:
    """A row of `_RECORD_COLUMNS` as a record; `known` holds the UUIDs of the
    tenant and execution ids seen so far."""
    (id_, tenant_id, correlation_id, parent_correlation_id, replay_batch_id, execution_id,
     route_id, adapter_name, adapter_index, stage_name, stage_status, stage_input_hash,
     item_key, attempt, started_at, completed_at, duration_ms, meta, error_info) = row
    return LineageRecord(
        _uuid(id_), _known_uuid(tenant_id, known), correlation_id, parent_correlation_id,
        replay_batch_id, _known_uuid(execution_id, known), route_id, adapter_name,
        adapter_index, stage_name, stage_status, stage_input_hash, item_key, attempt,
        _utc(started_at), None if completed_at is None else _utc(completed_at), duration_ms,
        meta, error_info)


def _uuid(value: UUID | str) -> UUID:
    # PostgreSQL's driver gives UUIDs; SQLite keeps their hex digits.
    return value if isinstance(value, UUID) else UUID(value)


def _known_uuid(value: UUID | str, known: dict[str, UUID]) -> UUID:
    """The UUID of an id that many rows repeat, made once per id."""
    if isinstance(value, UUID):
        return value
    found = known.get(value)
    if found is None:
        found = known[value] = UUID(value)
    return found


def _utc(value: datetime | str) -> datetime:
    """As `UTCDateTime` reads it: aware, in UTC."""
    if isinstance(value, str):
        # SQLite keeps the naive UTC text of UTCDateTime ("2026-01-01 00:00:00.000010");
        # parsed with its offset, the value comes out aware without a replace().
        return datetime.fromisoformat(value + "+00:00")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    # PostgreSQL's driver gives the session's time zone.
    return value if value.tzinfo is UTC else value.astimezone(UTC)
