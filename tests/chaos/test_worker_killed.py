"""A worker process killed with SIGKILL between claim and commit (issues 3 and 6):
another worker takes its messages over once the lease expires, every message
is recorded exactly once, and lineage shows the attempts that were lost."""

from __future__ import annotations

from uuid import UUID

from stageline.domain.status import ExecutionStatus, StepStatus
from tests.chaos.conftest import Cluster, attempts, completed, lost, worker_pid

FAN_OUT = 300
BATCH = 32
HANG_AFTER = 100


def test_killed_worker_message_completes_exactly_once(cluster: Cluster) -> None:
    first = cluster.worker("worker-a")
    execution_id = cluster.start("slow_once", {"run": "r1"})

    # The handler wrote its marker and now sleeps: the message is claimed
    # and its attempt is in flight, uncommitted.
    assert cluster.wait_for_marker("r1-work") == first.pid
    first.kill()
    second = cluster.worker("worker-b")

    record = cluster.wait_settled([execution_id], timeout=60)[execution_id]
    assert record.status == ExecutionStatus.COMPLETED
    assert [i.key for i in cluster.items(execution_id, "done")] == ["0"]
    assert cluster.values(execution_id, "done") == [{"run": "r1", "done": True}]

    [tries] = attempts(cluster.lineage(execution_id), "work").values()
    assert [(e.attempt, e.stage_status) for e in tries] == [(1, "failed"), (2, "completed")]
    dead, done = tries
    assert dead.error_info is not None and dead.error_info["type"] == "LeaseExpired"
    assert dead.completed_at is not None
    assert worker_pid(dead) == first.pid
    assert done.error_info is None

    [step] = cluster.steps(execution_id)
    assert (step.status, step.completed, step.failed, step.outstanding) == (
        StepStatus.COMPLETED, 1, 0, 0)
    assert second.alive()


def test_worker_killed_in_mid_fan_out(cluster: Cluster) -> None:
    first = cluster.worker("worker-a", STAGELINE_BATCH_SIZE=str(BATCH))
    request = {"run": "r2", "n": FAN_OUT, "delay": 0.002, "hang_after": HANG_AFTER}
    execution_id = cluster.start("fan", request)

    # The first worker commits whole batches until its item number
    # HANG_AFTER + 1 hangs: the batch around it is claimed, never committed.
    assert cluster.wait_for_marker("r2-hung", timeout=60) == first.pid
    done_before_kill = len(cluster.items(execution_id, "processed"))
    first.kill()
    assert HANG_AFTER - BATCH < done_before_kill <= HANG_AFTER
    cluster.worker("worker-b")

    record = cluster.wait_settled([execution_id], timeout=60)[execution_id]
    assert record.status == ExecutionStatus.COMPLETED
    _check_every_item_once(cluster, execution_id)
    _check_lost_attempts(cluster, execution_id, first.pid)


def _check_every_item_once(cluster: Cluster, execution_id: UUID) -> None:
    items = cluster.items(execution_id, "processed")
    assert sorted(i.key for i in items) == [f"0/{i:05d}" for i in range(FAN_OUT)]
    [result] = cluster.values(execution_id, "total")
    assert result == {"count": FAN_OUT, "sum": sum(i * i for i in range(FAN_OUT))}


def _check_lost_attempts(cluster: Cluster, execution_id: UUID, dead_pid: int) -> None:
    by_message = attempts(cluster.lineage(execution_id), "process")
    assert len(by_message) == FAN_OUT
    assert all(len(completed(tries)) == 1 for tries in by_message.values())
    lost_attempts = [e for tries in by_message.values() for e in lost(tries)]
    # The batch that held the hung item was lost whole, and only by the dead worker.
    assert 1 <= len(lost_attempts) <= BATCH
    assert {worker_pid(e) for e in lost_attempts} == {dead_pid}
    for entry in lost_attempts:
        tries = by_message[entry.correlation_id]
        assert [e.stage_status for e in tries] == ["failed", "completed"]

