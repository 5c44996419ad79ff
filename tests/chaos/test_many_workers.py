"""Three worker processes share 10,000 messages (10 executions x 1,000 fan-out
items): none is lost, none is recorded twice, and all three took part."""

from __future__ import annotations

import re
import time
from uuid import UUID

from sqlalchemy import func, select

from stageline.store.tables import lineage_entries, messages, stage_items
from tests.chaos.conftest import Cluster

EXECUTIONS = 10
FAN_OUT = 1000
WORKERS = 3
# Per execution: the split, one message per item, the collect.
MESSAGES = EXECUTIONS * (1 + FAN_OUT + 1)


def test_three_workers_ten_thousand_messages(cluster: Cluster) -> None:
    workers = [cluster.worker(f"worker-{n}", STAGELINE_BATCH_SIZE="100",
                              STAGELINE_LEASE_SECONDS="30") for n in range(WORKERS)]
    # Every worker up before the work exists: the whole run takes a few seconds,
    # about what three processes take to start on two cores.
    for w in workers:
        cluster.wait(lambda w=w: " on " in w.output() and "queues" in w.output(), 60,
                     f"{w.name} to start")
    started = time.monotonic()
    ids = [cluster.start("fan", {"run": f"bulk-{n}", "n": FAN_OUT})
           for n in range(EXECUTIONS)]

    records = cluster.wait_settled(ids, timeout=120)
    elapsed = time.monotonic() - started
    assert {r.status for r in records.values()} == {"completed"}

    _check_items(cluster, ids)
    _check_lineage(cluster, ids)
    processed = [_stopped_after(w.stop(), w.output()) for w in workers]
    assert sum(processed) == MESSAGES, processed
    assert all(p > 0 for p in processed), processed
    print(f"{MESSAGES} messages on {WORKERS} workers in {elapsed:.1f} s: {processed}")


def _check_items(cluster: Cluster, ids: list[UUID]) -> None:
    with cluster.runtime.db.read() as conn:
        per_stage: dict[str, int] = dict(conn.execute(
            select(stage_items.c.stage_name, func.count())
            .where(stage_items.c.execution_id.in_(ids)).group_by(stage_items.c.stage_name)
        ).all())
        open_messages = conn.execute(
            select(func.count()).select_from(messages)
            .where(messages.c.status != "completed")).scalar_one()
    assert per_stage == {"input": EXECUTIONS, "items": EXECUTIONS * FAN_OUT,
                         "processed": EXECUTIONS * FAN_OUT, "total": EXECUTIONS}
    assert open_messages == 0
    expected = {"count": FAN_OUT, "sum": sum(i * i for i in range(FAN_OUT))}
    assert all(cluster.values(e, "total") == [expected] for e in ids)


def _check_lineage(cluster: Cluster, ids: list[UUID]) -> None:
    """Exactly one completed attempt per message, and one per item."""
    le = lineage_entries.c
    with cluster.runtime.db.read() as conn:
        per_message = conn.execute(
            select(le.correlation_id, func.count())
            .where(le.execution_id.in_(ids), le.stage_status == "completed",
                   le.route_id.is_not(None))
            .group_by(le.correlation_id)
        ).all()
        per_item = conn.execute(
            select(func.count()).select_from(
                select(le.execution_id, le.item_key)
                .where(le.execution_id.in_(ids), le.route_id == "process",
                       le.stage_status == "completed")
                .group_by(le.execution_id, le.item_key).having(func.count() > 1).subquery())
        ).scalar_one()
    assert len(per_message) == MESSAGES
    assert {n for _, n in per_message} == {1}
    assert per_item == 0


def _stopped_after(returncode: int, output: str) -> int:
    assert returncode == 0, output[-2000:]
    found = re.search(r"worker stopped after (\d+) messages", output)
    assert found, output[-2000:]
    return int(found.group(1))
