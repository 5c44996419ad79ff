"""The one way a status changes: an UPDATE guarded by the allowed sources."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, update

from stageline.domain.status import (
    EXECUTION_TRANSITIONS,
    STEP_TRANSITIONS,
    ExecutionStatus,
    StepStatus,
)
from stageline.store.tables import executions, step_runs


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
