"""Leases and fencing: an expired lease is taken over, and the first worker's
late commit writes nothing."""

from __future__ import annotations

import time

from engine_driver import Engine, by_correlation, only, with_status

from stageline import Pipeline
from stageline.domain.items import encode
from stageline.domain.status import ExecutionStatus, MessageStatus, StageStatus
from stageline.engine.runner import bind, run_message
from stageline.store import queue
from stageline.store.items import NewItem
from stageline.store.queue import Claimed, CommitReport, Outcome

LEASE = 0.5  # long enough to see it hold, short enough to wait out


def increment(n: int) -> int:
    return n + 1


def _claim(engine: Engine, worker: str, lease: float) -> list[Claimed]:
    with engine.runtime.db.write() as conn:
        return queue.claim(conn, worker, 10, lease, ["default"], engine.configs(conn))


def _commit(engine: Engine, outcome: Outcome) -> CommitReport:
    with engine.runtime.db.write() as conn:
        return queue.commit(conn, [outcome], engine.configs(conn))


def _run(engine: Engine, claimed: Claimed) -> Outcome:
    step = engine.runtime.versions["fenced"].config.steps[claimed.step_index]
    return run_message(claimed, step, bind(step, engine.runtime.handlers), engine.runtime.blobs)


def test_a_commit_after_the_lease_was_taken_over_is_fenced(engine: Engine) -> None:
    p = Pipeline("fenced")
    p.step(output="incremented")(increment)
    engine.install(p)
    execution = engine.start("fenced", 41)

    (first,) = _claim(engine, "worker-1", lease=LEASE)
    assert _claim(engine, "worker-2", lease=30) == []  # the lease still holds
    time.sleep(LEASE + 0.1)
    (second,) = _claim(engine, "worker-2", lease=30)

    assert second.id == first.id and second.correlation_id == first.correlation_id
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.lease_token != first.lease_token
    entries = {e.id: e for e in engine.lineage(execution.id)}
    lost = entries[first.lineage_id]
    assert lost.stage_status == StageStatus.FAILED
    assert lost.error_info is not None and lost.error_info["type"] == "LeaseExpired"
    assert entries[second.lineage_id].stage_status == StageStatus.PROCESSING

    late = Outcome(first, MessageStatus.COMPLETED,
                   [NewItem("incremented", "0", first.correlation_id, encode(-1))],
                   "increment", 0, 1.0)
    fenced = _commit(engine, late)
    assert (fenced.fenced, fenced.committed, fenced.finished) == ([first.id], [], {})
    assert engine.items(execution.id, "incremented") == []
    assert engine.steps(execution.id)["increment"].completed == 0
    assert engine.lineage(execution.id) == list(entries.values())  # nothing written

    won = _commit(engine, _run(engine, second))
    assert won.committed == [second.id]
    assert won.finished == {execution.id: ExecutionStatus.COMPLETED}
    # Delivered twice, recorded once; a replayed commit is fenced too.
    assert _commit(engine, _run(engine, second)).fenced == [second.id]
    assert engine.values(execution.id, "incremented") == [42]
    attempts = by_correlation(engine.lineage(execution.id))[first.correlation_id]
    done = only(with_status(attempts, StageStatus.COMPLETED))
    assert (done.id, done.attempt) == (second.lineage_id, 2)
    assert only(with_status(attempts, StageStatus.FAILED)).id == first.lineage_id
    record = engine.execution(execution.id)
    assert (record.status, record.result) == (ExecutionStatus.COMPLETED, 42)
    assert engine.steps(execution.id)["increment"].completed == 1
