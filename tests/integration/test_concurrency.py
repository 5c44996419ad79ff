"""Three workers on one database share a 2,000-item fan-out: every item is
processed, none is recorded twice."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from uuid import UUID

import pytest
from engine_driver import Engine, with_status
from sqlalchemy import func, select

from stageline import Pipeline
from stageline.domain.status import EXECUTION_TERMINAL, ExecutionStatus, StageStatus
from stageline.engine.worker import Worker, WorkerSettings
from stageline.store.tables import lineage_entries

N = 2000
calls: Counter[str] = Counter()
calls_lock = threading.Lock()


def split(n: int) -> list[int]:
    return list(range(n))


def square(i: int) -> int:
    with calls_lock:
        calls[str(i)] += 1
    time.sleep(0.0005)  # long enough for the other workers to claim meanwhile
    return i * i


def total(squares: list[int]) -> dict[str, int]:
    return {"count": len(squares), "sum": sum(squares)}


def _workers(engine: Engine, count: int) -> list[Worker]:
    settings = engine.runtime.settings
    return [
        Worker(engine.runtime.db, engine.runtime.blobs, engine.runtime.handlers,
               WorkerSettings(concurrency=2, batch_size=25, lease_seconds=30.0,
                              poll_interval=0.02, queues=settings.queue_list,
                              inline_limit=settings.inline_limit, name=f"worker-{i}"))
        for i in range(count)
    ]


def _wait_until_finished(engine: Engine, execution_id: UUID, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while ExecutionStatus(engine.execution(execution_id).status) not in EXECUTION_TERMINAL:
        assert time.monotonic() < deadline, "execution did not finish in time"
        time.sleep(0.05)


def _completions_per_correlation(engine: Engine, execution_id: UUID) -> Counter[int]:
    with engine.runtime.db.read() as conn:
        rows = conn.execute(
            select(lineage_entries.c.correlation_id, func.count().label("n"))
            .where(lineage_entries.c.execution_id == execution_id,
                   lineage_entries.c.stage_status == StageStatus.COMPLETED)
            .group_by(lineage_entries.c.correlation_id))
        return Counter(r.n for r in rows)


def test_three_workers_process_every_item_exactly_once(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    p = Pipeline("squares")
    p.step(output="numbers", fan_out=True)(split)
    p.step(output="squares")(square)
    p.step(output="total", collect=True)(total)
    engine.install(p)
    calls.clear()
    execution = engine.start("squares", N)
    workers = _workers(engine, 3)

    caplog.set_level(logging.WARNING, logger="stageline")
    for worker in workers:
        worker.start()
    try:
        _wait_until_finished(engine, execution.id, timeout=60)
    finally:
        for worker in workers:
            worker.stop()

    # No loop error, lost lease, deadlock or busy database on the way.
    assert [r.getMessage() for r in caplog.records] == []
    record = engine.execution(execution.id)
    assert record.status == ExecutionStatus.COMPLETED
    assert record.result == {"count": N, "sum": sum(i * i for i in range(N))}
    assert engine.values(execution.id, "squares") == [i * i for i in range(N)]
    assert [i.key for i in engine.items(execution.id, "numbers")] == [
        f"0/{i:05d}" for i in range(N)]
    assert len(engine.items(execution.id, "total")) == 1
    # One completed entry per message: split, N squares, total.
    assert _completions_per_correlation(engine, execution.id) == Counter({1: N + 2})
    entries = engine.lineage(execution.id)
    assert len(with_status(entries, StageStatus.COMPLETED)) == N + 2
    assert len(entries) == N + 3  # plus the entry stage's 'initiated': no failed attempt
    assert set(calls) == {str(i) for i in range(N)} and set(calls.values()) == {1}
    assert [s.completed for s in engine.steps(execution.id).values()] == [1, N, 1]
    assert sum(w.processed for w in workers) == N + 2
    shares = [w.processed for w in workers]
    assert sum(1 for n in shares if n) >= 2, f"the workers did not share the work: {shares}"
