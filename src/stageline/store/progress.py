"""Applying `domain.progress.settle` to one execution, inside the caller's
transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from stageline.domain.config import PipelineConfig
from stageline.domain.items import decode
from stageline.domain.progress import Settlement, StepProgress, settle
from stageline.domain.status import (
    EXECUTION_TERMINAL,
    STEP_TERMINAL,
    ExecutionStatus,
    StepStatus,
)
from stageline.store.counters import add_outstanding
from stageline.store.dialect import notify_work
from stageline.store.executions import message_row, steps_of
from stageline.store.guarded import move_execution, move_step
from stageline.store.items import count_items
from stageline.store.records import StepRunRecord
from stageline.store.tables import executions, messages, stage_items
from stageline.store.types import utcnow


def settle_execution(conn: Connection, execution_id: UUID,
                     config: PipelineConfig) -> ExecutionStatus | None:
    """Move steps and the execution on as far as the counters allow.

    Returns the execution's new status when it changed.
    """
    status = ExecutionStatus(conn.execute(
        select(executions.c.status).where(executions.c.id == execution_id)).scalar_one())
    steps = steps_of(conn, execution_id)
    outcome = settle(status, progress_of(config, steps))
    if outcome.empty:
        return None
    _apply_steps(conn, execution_id, outcome)
    _enqueue_collects(conn, execution_id, config, steps, outcome)
    if outcome.execution is not None and outcome.execution != status:
        _finish(conn, execution_id, outcome.execution, config, steps, outcome)
        return outcome.execution
    return None


def progress_of(config: PipelineConfig, steps: list[StepRunRecord]) -> list[StepProgress]:
    producer = {s.output: i for i, s in enumerate(config.steps)}
    consumed = {s.input for s in config.steps}
    return [
        StepProgress(
            index=r.step_index,
            upstream=producer.get(config.steps[r.step_index].input),
            status=StepStatus(r.status),
            collect=config.steps[r.step_index].collect,
            review=config.steps[r.step_index].review,
            outstanding=r.outstanding, completed=r.completed, failed=r.failed,
            is_leaf=config.steps[r.step_index].output not in consumed,
        )
        for r in steps
    ]


def _apply_steps(conn: Connection, execution_id: UUID, outcome: Settlement) -> None:
    now = utcnow()
    for change in outcome.steps:
        values: dict[str, Any] = {}
        if change.status in STEP_TERMINAL or change.status == StepStatus.IN_REVIEW:
            values["finished_at"] = now
        if change.status == StepStatus.RUNNING:
            values["started_at"] = now
        if change.error_message:
            values["error_message"] = change.error_message
        move_step(conn, execution_id, change.index, change.status, **values)


def _enqueue_collects(conn: Connection, execution_id: UUID, config: PipelineConfig,
                      steps: list[StepRunRecord], outcome: Settlement) -> None:
    if not outcome.enqueue_collect:
        return
    now = utcnow()
    rows = []
    for index in outcome.enqueue_collect:
        step = config.steps[index]
        rows.append(message_row(execution_id, index, step.name, step.queue, step.priority,
                                None, execution_id, None, None, now))
    conn.execute(messages.insert(), rows)
    add_outstanding(conn, [(execution_id, i) for i in outcome.enqueue_collect])
    notify_work(conn)


def _finish(conn: Connection, execution_id: UUID, target: ExecutionStatus,
            config: PipelineConfig, steps: list[StepRunRecord], outcome: Settlement) -> None:
    values: dict[str, Any] = {"updated_at": utcnow()}
    if target in EXECUTION_TERMINAL:
        values["completed_at"] = values["updated_at"]
        if target in (ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED_WITH_ERRORS):
            values["result"] = _result(conn, execution_id, config)
        errors = [c.error_message for c in outcome.steps if c.error_message] + [
            r.error_message for r in steps if r.error_message]
        if target != ExecutionStatus.COMPLETED and errors:
            values["error"] = "; ".join(dict.fromkeys(e for e in errors if e))
    if target == ExecutionStatus.RUNNING:
        values["started_at"] = values["updated_at"]
    move_execution(conn, execution_id, target, **values)


def _result(conn: Connection, execution_id: UUID, config: PipelineConfig) -> Any:
    """The execution's result: the single item of its one final stage, when
    that item is small enough to live inline; otherwise a pointer to it."""
    consumed = {s.input for s in config.steps}
    leaves = [s.output for s in config.steps if s.output not in consumed]
    if len(leaves) != 1:
        return {"stages": leaves}
    rows = conn.execute(
        select(stage_items.c.data, stage_items.c.content_type, stage_items.c.storage_path)
        .where(stage_items.c.execution_id == execution_id,
               stage_items.c.stage_name == leaves[0]).limit(2)
    ).all()
    if len(rows) == 1 and rows[0].data is not None:
        return decode(rows[0].data, rows[0].content_type)
    return {"stage": leaves[0], "items": count_items(conn, execution_id, leaves[0])}
