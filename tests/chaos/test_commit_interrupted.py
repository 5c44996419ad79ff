"""A worker whose database connection drops while it commits leaves no
half-written message: outputs, lineage, follow-up messages, counters and the
message's status are committed together or not at all, and the message ends
up completed exactly once.

The worker runs in the test process, on the real database, so the test can
cut its connection at an exact point of the commit transaction:
- on PostgreSQL the test really terminates the worker's backend
  (pg_terminate_backend from another connection) after the commit has
  written the outputs, lineage and follow-ups, before it updates the counters;
- SQLite has no server to drop a connection, so the same point raises
  DatabaseUnavailable inside the transaction, which rolls it back the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Connection, func, select, text

from stageline.engine.worker import Worker, WorkerSettings
from stageline.store import counters, queue
from stageline.store.counters import StepDelta, StepKey
from stageline.store.db import Database, DatabaseUnavailable
from stageline.store.tables import lineage_entries, messages, stage_items, step_runs
from tests.chaos.conftest import BACKEND, Cluster

N = 5


@dataclass(frozen=True)
class Snapshot:
    """What other connections see of an execution's split step."""

    split_message: str
    split_lineage: list[str]
    items: int
    follow_ups: int
    split_completed: int
    process_outstanding: int


def snapshot(db: Database, execution_id: UUID) -> Snapshot:
    with db.read() as conn:
        return Snapshot(
            split_message=conn.execute(select(messages.c.status).where(
                messages.c.execution_id == execution_id, messages.c.route == "split"
            )).scalar_one(),
            split_lineage=sorted(conn.execute(select(lineage_entries.c.stage_status).where(
                lineage_entries.c.execution_id == execution_id,
                lineage_entries.c.route_id == "split")).scalars()),
            items=_count(conn, select(func.count()).select_from(stage_items).where(
                stage_items.c.execution_id == execution_id,
                stage_items.c.stage_name == "items")),
            follow_ups=_count(conn, select(func.count()).select_from(messages).where(
                messages.c.execution_id == execution_id, messages.c.route == "process")),
            split_completed=_count(conn, _step(execution_id, 0, step_runs.c.completed)),
            process_outstanding=_count(conn, _step(execution_id, 1, step_runs.c.outstanding)),
        )


def _step(execution_id: UUID, index: int, column: Any) -> Any:
    return select(column).where(step_runs.c.execution_id == execution_id,
                                step_runs.c.step_index == index)


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar_one())


NOTHING_COMMITTED = Snapshot("leased", ["processing"], 0, 0, 0, 0)
ALL_COMMITTED = Snapshot("completed", ["completed"], N, N, 1, N)


class DropMidCommit:
    """Stands in for queue.apply_deltas, the last write of a commit: the first
    time, the connection drops just before it; later calls pass through and
    record what the other connections saw of the failed attempt."""

    def __init__(self, db: Database, execution_id: UUID) -> None:
        self.db = db
        self.execution_id = execution_id
        self.original = counters.apply_deltas
        self.dropped = 0
        self.seen_after_drop: list[Snapshot] = []

    def __call__(self, conn: Connection, deltas: dict[StepKey, StepDelta]) -> None:
        if self.dropped:
            self.seen_after_drop.append(snapshot(self.db, self.execution_id))
            return self.original(conn, deltas)
        self.dropped += 1
        # Outputs, lineage and follow-ups are written, not yet committed.
        assert snapshot(self.db, self.execution_id) == NOTHING_COMMITTED
        if BACKEND != "postgresql":
            raise DatabaseUnavailable("simulated: connection lost in mid-commit")
        terminate_backend_of(conn, self.db)
        return self.original(conn, deltas)  # fails: the server closed the connection


def terminate_backend_of(conn: Connection, db: Database) -> None:
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with db.engine.connect() as admin:  # another connection of the pool
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        admin.commit()


class AckLostDatabase(Database):
    """A database whose answer to one commit is lost after the server applied it:
    the worker sees a connection error and commits the same batch again."""

    lose_next_commit = False

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with super().write() as conn:
            yield conn
        if self.lose_next_commit:
            self.lose_next_commit = False
            raise DatabaseUnavailable("simulated: connection lost after COMMIT")


def in_process_worker(cluster: Cluster, db: Database | None = None) -> Worker:
    settings = WorkerSettings(concurrency=2, lease_seconds=30, poll_interval=0.05)
    return Worker(db or cluster.runtime.db, cluster.runtime.blobs, cluster.runtime.handlers,
                  settings)


def test_connection_dropped_mid_commit_writes_nothing(cluster: Cluster,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    execution_id = cluster.start("fan", {"run": "mid", "n": N})
    drop = DropMidCommit(cluster.runtime.db, execution_id)
    monkeypatch.setattr(queue, "apply_deltas", drop)
    worker = in_process_worker(cluster)

    assert worker.run_once() == 1  # the split: claimed, run, commit dropped, committed again

    assert drop.dropped == 1
    assert drop.seen_after_drop == [NOTHING_COMMITTED]
    assert snapshot(cluster.runtime.db, execution_id) == ALL_COMMITTED
    _finish_and_check(cluster, worker, execution_id)


def test_commit_answer_lost_is_not_recorded_twice(cluster: Cluster,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    execution_id = cluster.start("fan", {"run": "ack", "n": N})
    db = AckLostDatabase(cluster.db_url)
    original = queue.commit
    reports: list[queue.CommitReport] = []

    def commit_then_lose_answer(conn: Connection, outcomes: list[queue.Outcome],
                                configs: queue.ConfigLookup,
                                carry: queue.Carry | None = None) -> queue.CommitReport:
        report = original(conn, outcomes, configs, carry)
        db.lose_next_commit = not reports
        reports.append(report)
        return report

    monkeypatch.setattr(queue, "commit", commit_then_lose_answer)
    worker = in_process_worker(cluster, db)
    try:
        assert worker.run_once() == 1
        # The second commit of the same batch finds the message completed: fenced.
        assert [len(r.committed) for r in reports] == [1, 0]
        assert [len(r.fenced) for r in reports] == [0, 1]
        assert snapshot(cluster.runtime.db, execution_id) == ALL_COMMITTED
        _finish_and_check(cluster, worker, execution_id)
    finally:
        db.dispose()


def _finish_and_check(cluster: Cluster, worker: Worker, execution_id: UUID) -> None:
    worker.run_until_idle(30)
    worker.stop()
    assert cluster.execution(execution_id).status == "completed"
    assert [i.key for i in cluster.items(execution_id, "processed")] == [
        f"0/{i:05d}" for i in range(N)]
    assert cluster.values(execution_id, "total") == [
        {"count": N, "sum": sum(i * i for i in range(N))}]
    entries = cluster.lineage(execution_id)
    routed = [e for e in entries if e.route_id is not None]
    assert sorted((e.route_id, e.stage_status, e.attempt) for e in routed) == sorted(
        [("split", "completed", 1), ("total", "completed", 1)]
        + [("process", "completed", 1)] * N)
    assert [(s.step_type, s.completed, s.failed, s.outstanding, s.attempts)
            for s in cluster.steps(execution_id)] == [
        ("split", 1, 0, 0, 1), ("process", N, 0, 0, N), ("total", 1, 0, 0, 1)]
