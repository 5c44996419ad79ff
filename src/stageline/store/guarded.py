"""The one way a status changes: an UPDATE guarded by the allowed sources."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, Text, bindparam, false, func, or_, update

from stageline.domain.progress import StepChange
from stageline.domain.status import (
    EXECUTION_TRANSITIONS,
    STEP_TERMINAL,
    STEP_TRANSITIONS,
    ExecutionStatus,
    StepStatus,
)
from stageline.store.bulk import Bulk
from stageline.store.tables import executions, step_runs
from stageline.store.types import UTCDateTime, utcnow


class TransitionConflict(Exception):
    """Zero rows moved: the row was not in a status the target may follow."""


def _move(conn: Connection, table: Table, where: list[ColumnElement[bool]],
          sources: frozenset[Any], target: Any, values: dict[str, Any], what: str) -> None:
    result = conn.execute(
        update(table).where(*where, table.c.status.in_([str(s) for s in sources]))
        .values(status=str(target), **values)
    )
    if result.rowcount == 0:
        raise TransitionConflict(f"{what} cannot move to {target!s}")


def move_execution(conn: Connection, execution_id: Any, target: ExecutionStatus,
                   **values: Any) -> None:
    _move(conn, executions, [executions.c.id == execution_id],
          EXECUTION_TRANSITIONS[target], target, values, f"execution {execution_id}")


def move_step(conn: Connection, execution_id: Any, step_index: int, target: StepStatus,
              **values: Any) -> None:
    _move(conn, step_runs,
          [step_runs.c.execution_id == execution_id, step_runs.c.step_index == step_index],
          STEP_TRANSITIONS[target], target, values, f"step {step_index} of {execution_id}")


def _step_move(target: StepStatus) -> Any:
    return (
        update(step_runs)
        .where(step_runs.c.execution_id == bindparam("g_exec"),
               step_runs.c.step_index == bindparam("g_index"),
               # OR of equalities, not IN: an expanding IN cannot go through executemany
               or_(false(), *(step_runs.c.status == str(s) for s in STEP_TRANSITIONS[target])))
        .values(status=str(target),
                started_at=func.coalesce(step_runs.c.started_at, _time("g_started")),
                finished_at=func.coalesce(_time("g_finished"), step_runs.c.finished_at),
                error_message=func.coalesce(bindparam("g_error", type_=Text()),
                                            step_runs.c.error_message))
    )


def _time(name: str) -> Any:
    # typed: inside coalesce() a parameter would not take the column's type,
    # and SQLite would get the driver's own text for it instead of ours
    return bindparam(name, type_=UTCDateTime())


# Built once: the hot path reuses compiled statements instead of rebuilding them.
_STEP_MOVES = {target: Bulk(_step_move(target)) for target in StepStatus}


def move_steps(conn: Connection, changes: list[tuple[Any, StepChange]]) -> None:
    """Many guarded step moves: one executemany per target status."""
    now = utcnow()
    by_target: dict[StepStatus, list[dict[str, Any]]] = defaultdict(list)
    for execution_id, change in changes:
        ends = change.status in STEP_TERMINAL or change.status == StepStatus.IN_REVIEW
        by_target[change.status].append({
            "g_exec": execution_id, "g_index": change.index, "g_started": now,
            "g_finished": now if ends else None, "g_error": change.error_message,
        })
    for target, rows in by_target.items():
        moved = _STEP_MOVES[target].execute(conn, rows)
        if conn.dialect.supports_sane_multi_rowcount and moved != len(rows):
            raise TransitionConflict(f"{len(rows) - moved} steps cannot move to {target!s}")


def _execution_move(target: ExecutionStatus) -> Any:
    return (
        update(executions)
        .where(executions.c.id == bindparam("g_id"),
               or_(false(), *(executions.c.status == str(s)
                              for s in EXECUTION_TRANSITIONS[target])))
        .values(status=str(target), updated_at=bindparam("updated_at"),
                started_at=func.coalesce(executions.c.started_at, _time("started_at")),
                completed_at=func.coalesce(_time("completed_at"), executions.c.completed_at),
                result=bindparam("result"), error=bindparam("error"))
    )


_EXECUTION_MOVES = {target: Bulk(_execution_move(target)) for target in ExecutionStatus
                    if EXECUTION_TRANSITIONS[target]}


def move_executions(conn: Connection,
                    moves: list[tuple[Any, ExecutionStatus, dict[str, Any]]]) -> None:
    """Many guarded execution moves: one executemany per target status.

    Each move gives updated_at, started_at, completed_at, result and error.
    """
    by_target: dict[ExecutionStatus, list[dict[str, Any]]] = defaultdict(list)
    for execution_id, target, values in moves:
        by_target[target].append({"g_id": execution_id, **values})
    for target, rows in by_target.items():
        moved = _EXECUTION_MOVES[target].execute(conn, rows)
        if conn.dialect.supports_sane_multi_rowcount and moved != len(rows):
            raise TransitionConflict(f"{len(rows) - moved} executions cannot move "
                                     f"to {target!s}")
