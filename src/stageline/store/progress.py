"""Applying `domain.progress.settle` to executions, inside the caller's
transaction, with a fixed number of statements per batch."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, bindparam, func, select, tuple_

from stageline.domain.config import PipelineConfig
from stageline.domain.items import decode
from stageline.domain.progress import StepChange, StepProgress, settle
from stageline.domain.status import EXECUTION_TERMINAL, ExecutionStatus, StepStatus
from stageline.store.counters import add_outstanding
from stageline.store.dialect import notify_work
from stageline.store.executions import message_row
from stageline.store.guarded import move_executions, move_steps
from stageline.store.tables import executions, messages, stage_items, step_runs
from stageline.store.types import utcnow

# Only what settling reads: lighter than whole rows on the hot path.
_STEP_COLUMNS = (step_runs.c.execution_id, step_runs.c.step_index, step_runs.c.step_type,
                 step_runs.c.status, step_runs.c.outstanding, step_runs.c.completed,
                 step_runs.c.failed, step_runs.c.error_message)
DONE = (ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED_WITH_ERRORS)


@dataclass(frozen=True)
class Ending:
    execution_id: UUID
    target: ExecutionStatus
    config: PipelineConfig
    errors: list[str]


def settle_execution(conn: Connection, execution_id: UUID,
                     config: PipelineConfig) -> ExecutionStatus | None:
    """Move one execution's steps and status on as far as the counters allow.

    Returns the execution's new status when it changed.
    """
    return settle_executions(conn, [(execution_id, config)]).get(execution_id)


def settle_executions(conn: Connection, targets: list[tuple[UUID, PipelineConfig]],
                      statuses: dict[UUID, ExecutionStatus] | None = None,
                      ) -> dict[UUID, ExecutionStatus]:
    """Settle a batch of executions; returns those whose status changed.

    `statuses`: the executions' statuses when the caller has just read them
    under lock, to save reading them again.
    """
    ids = [execution_id for execution_id, _ in targets]
    if statuses is None:
        statuses = {r.id: ExecutionStatus(r.status)
                    for r in conn.execute(_STATUSES, {"p_ids": ids})}
    steps = _steps_by_execution(conn, ids)
    changes: list[tuple[UUID, StepChange]] = []
    collects: list[tuple[UUID, PipelineConfig, int]] = []
    endings: list[Ending] = []
    for execution_id, config in targets:
        rows = steps[execution_id]
        outcome = settle(statuses[execution_id], progress_of(config, rows))
        changes += [(execution_id, change) for change in outcome.steps]
        collects += [(execution_id, config, index) for index in outcome.enqueue_collect]
        if outcome.execution is not None and outcome.execution != statuses[execution_id]:
            errors = [c.error_message for c in outcome.steps if c.error_message]
            errors += [r.error_message for r in rows if r.error_message]
            endings.append(Ending(execution_id, outcome.execution, config, errors))
    move_steps(conn, changes)
    _enqueue_collects(conn, collects)
    _finish(conn, endings)
    return {e.execution_id: e.target for e in endings}


_STATUSES = select(executions.c.id, executions.c.status).where(
    executions.c.id.in_(bindparam("p_ids", expanding=True)))
_STEPS = select(*_STEP_COLUMNS).where(
    step_runs.c.execution_id.in_(bindparam("p_ids", expanding=True)))


def _steps_by_execution(conn: Connection, ids: list[UUID]) -> dict[UUID, list[Any]]:
    found: dict[UUID, list[Any]] = defaultdict(list)
    for row in conn.execute(_STEPS, {"p_ids": ids}):
        found[row.execution_id].append(row)
    return found


def progress_of(config: PipelineConfig, rows: list[Any]) -> list[StepProgress]:
    """The counters as the domain sees them, upstream steps first."""
    layout = config.layout
    by_index = {r.step_index: r for r in rows}
    progress = []
    for index in layout.order:
        r = by_index[index]
        step = config.steps[index]
        progress.append(StepProgress(
            index=index, upstream=layout.upstream[index], status=StepStatus(r.status),
            collect=step.collect, review=step.review, outstanding=r.outstanding,
            completed=r.completed, failed=r.failed, is_leaf=layout.is_leaf[index],
        ))
    return progress


def _enqueue_collects(conn: Connection,
                      collects: list[tuple[UUID, PipelineConfig, int]]) -> None:
    """One message per collect step whose input stage is complete: the whole stage."""
    if not collects:
        return
    now = utcnow()
    rows = [message_row(execution_id, index, config.steps[index].name,
                        config.steps[index].queue, config.steps[index].priority,
                        None, execution_id, None, None, now)
            for execution_id, config, index in collects]
    conn.execute(messages.insert(), rows)
    add_outstanding(conn, [(execution_id, index) for execution_id, _, index in collects])
    notify_work(conn)


def _finish(conn: Connection, endings: list[Ending]) -> None:
    if not endings:
        return
    now = utcnow()
    results = _results(conn, [e for e in endings if e.target in DONE])
    moves = []
    for e in endings:
        terminal = e.target in EXECUTION_TERMINAL
        error = "; ".join(dict.fromkeys(e.errors)) if e.errors else None
        moves.append((e.execution_id, e.target, {
            "updated_at": now,
            "started_at": now if e.target == ExecutionStatus.RUNNING else None,
            "completed_at": now if terminal else None,
            "result": results.get(e.execution_id),
            "error": error if terminal and e.target != ExecutionStatus.COMPLETED else None,
        }))
    move_executions(conn, moves)


_ADDRESS = tuple_(stage_items.c.execution_id, stage_items.c.stage_name)
_LEAF_COUNTS = (select(stage_items.c.execution_id, func.count())
                .where(_ADDRESS.in_(bindparam("r_addr", expanding=True)))
                .group_by(stage_items.c.execution_id))
_LEAF_ITEMS = (select(stage_items.c.execution_id, stage_items.c.data,
                      stage_items.c.content_type)
               .where(_ADDRESS.in_(bindparam("r_addr", expanding=True))))


def _results(conn: Connection, endings: list[Ending]) -> dict[UUID, Any]:
    """Each execution's result: the single item of its one final stage when that
    item lives inline; otherwise a pointer to the stage and its size."""
    leaf_of: dict[UUID, str] = {}
    results: dict[UUID, Any] = {}
    for e in endings:
        leaves = [s.output for s, leaf in zip(e.config.steps, e.config.layout.is_leaf,
                                              strict=True) if leaf]
        if len(leaves) == 1:
            leaf_of[e.execution_id] = leaves[0]
        else:
            results[e.execution_id] = {"stages": leaves}
    if not leaf_of:
        return results
    counts: dict[UUID, int] = {row[0]: row[1] for row in conn.execute(
        _LEAF_COUNTS, {"r_addr": list(leaf_of.items())})}
    singles = [(e, s) for e, s in leaf_of.items() if counts.get(e) == 1]
    if singles:
        for row in conn.execute(_LEAF_ITEMS, {"r_addr": singles}):
            if row.data is not None:
                results[row.execution_id] = decode(row.data, row.content_type)
    for execution_id, stage in leaf_of.items():
        results.setdefault(execution_id, {"stage": stage, "items": counts.get(execution_id, 0)})
    return results
