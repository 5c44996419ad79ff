"""Operator actions: review decisions, cancel, interrupt and resume."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from engine_driver import Engine, by_correlation, only, with_status

from stageline import Pipeline
from stageline.domain.config import PipelineConfig
from stageline.domain.items import encode
from stageline.domain.status import ExecutionStatus, MessageStatus, StageStatus, StepStatus
from stageline.store import control, queue
from stageline.store.control import NotInReview
from stageline.store.guarded import TransitionConflict
from stageline.store.items import NewItem
from stageline.store.queue import Claimed, CommitReport, Outcome

E = ExecutionStatus
S = StepStatus
DECISION = {"id": "d-1", "description": "looks right", "author": "reviewer@example.com"}


def draft(topic: str) -> str:
    return f"draft about {topic}"


def publish(text: str) -> str:
    return text.upper()


def reviewed() -> Pipeline:
    p = Pipeline("reviewed")
    p.step(output="drafts", review=True)(draft)
    p.step(output="published")(publish)
    return p


def _config(engine: Engine, name: str) -> PipelineConfig:
    return engine.runtime.versions[name].config


def _act(engine: Engine, execution_id: UUID, action: str) -> ExecutionStatus:
    with engine.runtime.db.write() as conn:
        record = engine.execution(execution_id)
        return control.act(conn, record, _config(engine, "reviewed"), action, DECISION)


def _in_review(engine: Engine) -> UUID:
    engine.install(reviewed())
    execution = engine.start("reviewed", "rivers")
    record = engine.drain(execution.id)
    assert record.status == E.IN_REVIEW
    steps = engine.steps(record.id)
    assert steps["draft"].status == S.IN_REVIEW
    # `publish` already counts its held message (status running), but runs nothing.
    assert (steps["publish"].outstanding, steps["publish"].completed) == (1, 0)
    assert engine.values(record.id, "drafts") == ["draft about rivers"]
    assert engine.items(record.id, "published") == []  # downstream is held
    assert engine.message_statuses(record.id) == [MessageStatus.COMPLETED, MessageStatus.HELD]
    assert engine.worker.run_once() == 0
    return record.id


def test_approving_a_review_resumes_the_execution(engine: Engine) -> None:
    execution_id = _in_review(engine)

    assert _act(engine, execution_id, "approve") == E.RUNNING
    record = engine.drain(execution_id)

    assert record.status == E.COMPLETED
    assert record.result == "DRAFT ABOUT RIVERS"
    steps = engine.steps(execution_id)
    assert (steps["draft"].status, steps["publish"].status) == (S.COMPLETED, S.COMPLETED)
    assert steps["draft"].decision == DECISION


def test_rejecting_a_review_drops_the_execution(engine: Engine) -> None:
    execution_id = _in_review(engine)

    assert _act(engine, execution_id, "reject") == E.DROPPED

    record = engine.execution(execution_id)
    assert record.status == E.DROPPED and record.completed_at is not None
    steps = engine.steps(execution_id)
    assert (steps["draft"].status, steps["draft"].decision) == (S.CANCELLED, DECISION)
    assert steps["publish"].status == S.CANCELLED
    assert steps["publish"].error_message
    held = only([e for e in engine.lineage(execution_id) if e.route_id == "publish"])
    assert (held.stage_status, held.stage_name) == (StageStatus.CANCELLED, "published")
    assert engine.worker.run_once() == 0
    assert engine.items(execution_id, "published") == []


def test_acting_on_an_execution_not_in_review_is_refused(engine: Engine) -> None:
    execution_id = _in_review(engine)
    _act(engine, execution_id, "approve")
    engine.drain(execution_id)

    for action in ("approve", "reject"):
        with pytest.raises(NotInReview):
            _act(engine, execution_id, action)
    assert engine.execution(execution_id).status == E.COMPLETED


# -- cancel ----------------------------------------------------------------

def split(n: int) -> list[int]:
    return list(range(n))


def work(i: int) -> int:
    return i * 10


def finish(i: int) -> dict[str, Any]:
    return {"value": i}


def fanning(*, tail: bool = False) -> Pipeline:
    p = Pipeline("fanning")
    p.step(output="parts", fan_out=True)(split)
    p.step(output="worked")(work)
    if tail:
        p.step(output="finished")(finish)
    return p


def _split_done(engine: Engine, n: int, *, tail: bool = False) -> UUID:
    """An execution whose fan-out has run: n `work` messages are queued."""
    engine.install(fanning(tail=tail))
    execution = engine.start("fanning", n)
    assert engine.worker.run_once() == 1
    return execution.id


def _claim(engine: Engine, worker: str, limit: int, lease: float = 30.0) -> list[Claimed]:
    with engine.runtime.db.write() as conn:
        return queue.claim(conn, worker, limit, lease, ["default"], engine.configs(conn))


def _commit(engine: Engine, outcomes: list[Outcome]) -> CommitReport:
    with engine.runtime.db.write() as conn:
        return queue.commit(conn, outcomes, engine.configs(conn))


def _completed(claimed: Claimed, value: Any, stage: str = "worked") -> Outcome:
    assert claimed.item_key is not None
    item = NewItem(stage, claimed.item_key, claimed.correlation_id, encode(value))
    return Outcome(claimed, MessageStatus.COMPLETED, [item], claimed.route, 0, 1.0)


def _cancel(engine: Engine, execution_id: UUID) -> ExecutionStatus:
    with engine.runtime.db.write() as conn:
        return control.cancel(conn, engine.execution(execution_id),
                              _config(engine, "fanning"), "operator")


def test_cancel_cancels_queued_messages_with_lineage(engine: Engine) -> None:
    execution_id = _split_done(engine, 5)

    assert _cancel(engine, execution_id) == E.CANCELLED

    record = engine.execution(execution_id)
    assert (record.status, record.cancelled_by) == (E.CANCELLED, "operator")
    assert record.cancelled_at is not None
    steps = engine.steps(execution_id)
    assert (steps["split"].status, steps["work"].status) == (S.COMPLETED, S.CANCELLED)
    assert steps["work"].outstanding == 0
    cancelled = with_status(engine.lineage(execution_id), StageStatus.CANCELLED)
    assert sorted(e.item_key or "" for e in cancelled) == [f"0/{i:05d}" for i in range(5)]
    assert {(e.stage_name, e.route_id) for e in cancelled} == {("worked", "work")}
    assert engine.message_statuses(execution_id).count(MessageStatus.CANCELLED) == 5
    assert engine.worker.run_once() == 0
    assert engine.items(execution_id, "worked") == []
    with pytest.raises(TransitionConflict):
        _cancel(engine, execution_id)


def test_cancel_waits_for_in_flight_work_to_drain(engine: Engine) -> None:
    execution_id = _split_done(engine, 3)
    (in_flight,) = _claim(engine, "w1", 1)

    assert _cancel(engine, execution_id) == E.CANCELLING
    assert _claim(engine, "w2", 10) == []  # nothing more is handed out

    report = _commit(engine, [_completed(in_flight, 0)])
    assert report.finished == {execution_id: E.CANCELLED}
    assert engine.execution(execution_id).status == E.CANCELLED
    assert engine.values(execution_id, "worked") == [0]
    statuses = {e.stage_status for e in by_correlation(engine.lineage(execution_id))[
        in_flight.correlation_id]}
    assert statuses == {StageStatus.COMPLETED}


def test_cancel_with_in_flight_work_that_has_a_downstream_step_ends(engine: Engine) -> None:
    execution_id = _split_done(engine, 3, tail=True)
    (in_flight,) = _claim(engine, "w1", 1)
    assert _cancel(engine, execution_id) == E.CANCELLING

    _commit(engine, [_completed(in_flight, 0)])

    assert engine.execution(execution_id).status == E.CANCELLED
    assert MessageStatus.QUEUED not in engine.message_statuses(execution_id)


def test_cancel_with_in_flight_work_that_will_retry_ends(engine: Engine) -> None:
    execution_id = _split_done(engine, 3)
    (in_flight,) = _claim(engine, "w1", 1)
    assert _cancel(engine, execution_id) == E.CANCELLING

    retry = Outcome(in_flight, MessageStatus.QUEUED, [], "work", 0, 1.0,
                    {"type": "RuntimeError", "message": "flaky"}, 0.0)
    _commit(engine, [retry])

    assert engine.execution(execution_id).status == E.CANCELLED


# -- interrupt and resume --------------------------------------------------

def test_an_interrupted_execution_waits_for_resume(engine: Engine) -> None:
    execution_id = _split_done(engine, 4)
    (lost,) = _claim(engine, "dying-worker", 1)

    with engine.runtime.db.write() as conn:
        assert control.interrupt_running(conn) == 1

    assert engine.execution(execution_id).status == E.INTERRUPTED
    aborted = only([e for e in engine.lineage(execution_id) if e.id == lost.lineage_id])
    assert aborted.stage_status == StageStatus.FAILED
    assert aborted.error_info is not None and aborted.error_info["type"] == "Interrupted"
    assert engine.message_statuses(execution_id).count(MessageStatus.QUEUED) == 4
    assert _claim(engine, "w2", 10) == []
    assert engine.worker.run_once() == 0
    # The attempt cut off by the stop can no longer commit.
    assert _commit(engine, [_completed(lost, -1)]).fenced == [lost.id]

    with engine.runtime.db.write() as conn:
        assert control.resume_interrupted(conn) == 1
    assert engine.execution(execution_id).status == E.RUNNING
    record = engine.drain(execution_id)

    assert record.status == E.COMPLETED
    assert engine.values(execution_id, "worked") == [0, 10, 20, 30]
    done = with_status(engine.lineage(execution_id), StageStatus.COMPLETED)
    assert len([e for e in done if e.correlation_id == lost.correlation_id]) == 1
    assert engine.steps(execution_id)["work"].completed == 4


def test_interrupting_a_cancelling_execution_still_lets_it_end(engine: Engine) -> None:
    execution_id = _split_done(engine, 3)
    (in_flight,) = _claim(engine, "dying-worker", 1)
    assert _cancel(engine, execution_id) == E.CANCELLING

    with engine.runtime.db.write() as conn:
        control.interrupt_running(conn)
        control.resume_interrupted(conn)
    _commit(engine, [_completed(in_flight, 0)])  # fenced: its lease was revoked
    engine.worker.run_until_idle(5)

    assert engine.execution(execution_id).status == E.CANCELLED


def test_cancelling_a_pending_execution_ends_it_at_once(engine: Engine) -> None:
    engine.install(fanning())
    execution = engine.start("fanning", 3)

    assert _cancel(engine, execution.id) == E.CANCELLED

    assert {s.status for s in engine.steps(execution.id).values()} == {S.CANCELLED}
    entry = only(with_status(engine.lineage(execution.id), StageStatus.CANCELLED))
    assert (entry.route_id, entry.stage_name, entry.item_key) == ("split", "parts", "0")
    assert engine.worker.run_once() == 0
