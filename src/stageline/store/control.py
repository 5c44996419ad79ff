"""Operator actions on an execution: cancel, review decisions, interrupt, resume."""

from __future__ import annotations

from collections import Counter
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select, update

from stageline.domain.config import PipelineConfig
from stageline.domain.status import (
    EXECUTION_TRANSITIONS,
    ExecutionStatus,
    MessageStatus,
    StageStatus,
    StepStatus,
)
from stageline.store.counters import StepDelta, apply_deltas
from stageline.store.dialect import notify_work
from stageline.store.guarded import TransitionConflict, move_execution, move_step
from stageline.store.ids import new_id
from stageline.store.pipelines import config_of
from stageline.store.progress import settle_execution
from stageline.store.records import ExecutionRecord
from stageline.store.tables import executions, lineage_entries, messages, step_runs
from stageline.store.types import utcnow

E = ExecutionStatus


class NotInReview(TransitionConflict):
    pass


def cancel(conn: Connection, record: ExecutionRecord, config: PipelineConfig,
           by: str) -> ExecutionStatus:
    """Stop handing out work; in-flight attempts drain, then it is cancelled."""
    if record.status not in EXECUTION_TRANSITIONS[E.CANCELLING]:
        raise TransitionConflict(f"execution is {record.status}; it cannot be cancelled")
    now = utcnow()
    move_execution(conn, record.id, E.CANCELLING, cancelled_at=now, cancelled_by=by,
                   updated_at=now)
    _cancel_waiting(conn, record, [MessageStatus.QUEUED, MessageStatus.HELD])
    return settle_execution(conn, record.id, config) or E.CANCELLING


def _cancel_waiting(conn: Connection, record: ExecutionRecord,
                    statuses: list[MessageStatus]) -> None:
    rows = conn.execute(select(messages).where(
        messages.c.execution_id == record.id, messages.c.status.in_(statuses))).all()
    if not rows:
        return
    conn.execute(update(messages).where(messages.c.id.in_([r.id for r in rows]))
                 .values(status=MessageStatus.CANCELLED))
    now = utcnow()
    stage_of = {r.step_index: r.output_stage for r in conn.execute(
        select(step_runs.c.step_index, step_runs.c.output_stage)
        .where(step_runs.c.execution_id == record.id))}
    conn.execute(lineage_entries.insert(), [{
        "id": new_id(), "tenant_id": record.tenant_id, "correlation_id": str(r.id),
        "parent_correlation_id": r.parent_correlation_id, "replay_batch_id": r.replay_batch_id,
        "execution_id": record.id, "route_id": r.route, "stage_name": stage_of[r.step_index],
        "stage_status": StageStatus.CANCELLED, "item_key": r.item_key, "attempt": r.attempt,
        "started_at": now, "completed_at": now, "duration_ms": 0.0,
    } for r in rows])
    counts = Counter(r.step_index for r in rows)
    apply_deltas(conn, {(record.id, i): StepDelta(outstanding=-n) for i, n in counts.items()})


def act(conn: Connection, record: ExecutionRecord, config: PipelineConfig, action: str,
        decision: dict[str, Any]) -> ExecutionStatus:
    """Approve (resume) or reject (drop) an execution waiting in review."""
    if record.status != E.IN_REVIEW:
        raise NotInReview(f"execution is {record.status}, not in_review")
    step = conn.execute(select(step_runs.c.step_index).where(
        step_runs.c.execution_id == record.id,
        step_runs.c.status == StepStatus.IN_REVIEW)).scalar_one()
    now = utcnow()
    if action == "approve":
        move_step(conn, record.id, step, StepStatus.COMPLETED, decision=decision)
        conn.execute(update(messages).where(messages.c.execution_id == record.id,
                                            messages.c.status == MessageStatus.HELD)
                     .values(status=MessageStatus.QUEUED, available_at=now))
        move_execution(conn, record.id, E.RUNNING, updated_at=now)
        notify_work(conn)
        return settle_execution(conn, record.id, config) or E.RUNNING
    move_step(conn, record.id, step, StepStatus.CANCELLED, decision=decision,
              error_message="rejected in review")
    _cancel_waiting(conn, record, [MessageStatus.HELD, MessageStatus.QUEUED])
    _cancel_open_steps(conn, record.id)
    move_execution(conn, record.id, E.DROPPED, completed_at=now, updated_at=now)
    return E.DROPPED


def _cancel_open_steps(conn: Connection, execution_id: UUID) -> None:
    conn.execute(update(step_runs).where(
        step_runs.c.execution_id == execution_id,
        step_runs.c.status.in_([StepStatus.PENDING, StepStatus.RUNNING]))
        .values(status=StepStatus.CANCELLED, finished_at=utcnow(),
                error_message="execution dropped in review"))


def interrupt_running(conn: Connection) -> int:
    """On an embedded server's stop: what was running resumes at next start.

    Attempts in flight are given back: their messages queue again for an
    interrupted execution, and are cancelled for one already being cancelled.
    """
    now = utcnow()
    stopped = [r.id for r in conn.execute(
        update(executions).where(executions.c.status.in_([E.PENDING, E.RUNNING]))
        .values(status=E.INTERRUPTED, updated_at=now).returning(executions.c.id))]
    in_flight = select(messages.c.lineage_id).where(messages.c.status == MessageStatus.LEASED)
    conn.execute(update(lineage_entries).where(
        lineage_entries.c.id.in_(in_flight),
        lineage_entries.c.stage_status == StageStatus.PROCESSING).values(
        stage_status=StageStatus.FAILED, completed_at=now,
        error_info={"type": "Interrupted", "message": "the service stopped mid-attempt"}))
    conn.execute(update(messages).where(
        messages.c.status == MessageStatus.LEASED, messages.c.execution_id.in_(stopped))
        .values(status=MessageStatus.QUEUED, lease_owner=None, lease_token=None,
                lease_expires_at=None))
    _drop_leases_of_cancelling(conn)
    return len(stopped)


def _drop_leases_of_cancelling(conn: Connection) -> None:
    draining = conn.execute(select(executions).where(
        executions.c.status == E.CANCELLING)).all()
    for row in draining:
        record = ExecutionRecord.from_row(row)
        _cancel_waiting(conn, record, [MessageStatus.LEASED])
        settle_execution(conn, record.id, config_of(conn, record.config_id))


def resume_interrupted(conn: Connection) -> int:
    result = conn.execute(update(executions).where(executions.c.status == E.INTERRUPTED)
                          .values(status=E.RUNNING, updated_at=utcnow()))
    if result.rowcount:
        notify_work(conn)
    return result.rowcount
