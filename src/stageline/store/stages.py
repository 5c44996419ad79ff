"""Reading a stage as an execution sees it, including what a replay reuses
from its parent without copying."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Select,
    Subquery,
    func,
    literal,
    or_,
    select,
    union_all,
)

from stageline.domain.replay import StageMode
from stageline.store.items import StoredItem, to_item
from stageline.store.tables import messages, stage_items, stage_sources, step_runs

MAX_REPLAY_DEPTH = 64
STAGE_COLUMNS = list(stage_items.c)


@dataclass(frozen=True)
class StageSource:
    source_execution_id: UUID
    mode: StageMode
    producer_step: int | None


def source_of(conn: Connection, execution_id: UUID, stage: str) -> StageSource | None:
    row = conn.execute(
        select(stage_sources).where(
            stage_sources.c.execution_id == execution_id, stage_sources.c.stage_name == stage
        )
    ).first()
    if row is None:
        return None
    return StageSource(row.source_execution_id, StageMode(row.mode), row.producer_step)


def owner(conn: Connection, execution_id: UUID, stage: str) -> UUID:
    """The first execution up the replay chain that wrote some of this stage itself."""
    for _ in range(MAX_REPLAY_DEPTH):
        source = source_of(conn, execution_id, stage)
        if source is None or source.mode != StageMode.ALL:
            return execution_id
        execution_id = source.source_execution_id
    raise RecursionError(f"replay chain of {execution_id} is too deep")


def read_stage(conn: Connection, execution_id: UUID, stage: str, *, after: str | None = None,
               limit: int | None = None, prefix: str | None = None) -> list[StoredItem]:
    """A stage's items in key order, as `execution_id` sees them."""
    sub = stage_query(conn, execution_id, stage).subquery()
    final = select(sub)
    if after is not None:
        final = final.where(sub.c.item_key > after)
    if prefix:
        final = final.where(sub.c.item_key.startswith(prefix, autoescape=True))
    final = final.order_by(sub.c.item_key)
    if limit is not None:
        final = final.limit(limit)
    return [to_item(r) for r in conn.execute(final)]


def stage_query(conn: Connection, execution_id: UUID, stage: str,
                depth: int = 0) -> Select[Any] | CompoundSelect[Any]:
    """The stage's rows, following reuse links to the executions that hold them."""
    if depth > MAX_REPLAY_DEPTH:
        raise RecursionError(f"replay chain of {execution_id} is deeper than {MAX_REPLAY_DEPTH}")
    source = source_of(conn, execution_id, stage)
    if source is None:
        return _own(execution_id, stage)
    inherited = stage_query(conn, source.source_execution_id, stage, depth + 1)
    if source.mode == StageMode.ALL:
        return inherited
    return union_all(_own(execution_id, stage),
                     _filled(execution_id, stage, inherited.subquery(), source.producer_step))


def _own(execution_id: UUID, stage: str) -> Select[Any]:
    return select(*STAGE_COLUMNS).where(stage_items.c.execution_id == execution_id,
                                        stage_items.c.stage_name == stage)


def _filled(execution_id: UUID, stage: str, inherited: Subquery,
            producer_step: int | None) -> Select[Any]:
    """The inherited items for keys the child did not produce itself.

    A key is the child's when it holds an item with that key, or when it has a
    message at the producing step for that key or one it descends from
    (fan-out keys extend their parent's key with "/i").
    """
    key = inherited.c.item_key
    own = stage_items.alias("own")
    has_own = select(literal(1)).where(
        own.c.execution_id == execution_id, own.c.stage_name == stage,
        own.c.item_key == key).exists()
    m = messages.c
    replayed = select(literal(1)).where(
        m.execution_id == execution_id, m.step_index == producer_step,
        # a prefix test without LIKE, so '_' and '%' in keys are plain characters
        or_(m.item_key == key,
            func.substr(key, 1, func.length(m.item_key) + 1) == m.item_key.concat("/")),
    ).exists()
    return select(*[inherited.c[c.name] for c in STAGE_COLUMNS]).where(~has_own, ~replayed)


def stage_hashes(conn: Connection, execution_id: UUID, stage: str) -> dict[str, str]:
    """Key -> content hash of a stage as the execution sees it, without the bytes."""
    sub = stage_query(conn, execution_id, stage).subquery()
    rows = conn.execute(select(sub.c.item_key, sub.c.content_hash))
    return {r.item_key: r.content_hash for r in rows}


def stage_names(conn: Connection, execution_id: UUID) -> list[str]:
    """Every stage the execution has or reuses, in its steps' order, input first."""
    outputs = conn.execute(select(step_runs.c.output_stage).where(
        step_runs.c.execution_id == execution_id).order_by(step_runs.c.step_index))
    return ["input", *(r.output_stage for r in outputs)]
