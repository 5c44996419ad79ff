"""A worker that lost its lease but is still running (paused, partitioned from
the database, stuck in a long GC) finishes its attempt after another worker
took the message over and committed. Its commit is fenced; the outputs that
were recorded must still be the ones that committed, byte for byte, even
when they live in stage storage.

The two workers run in the test process on the real database and storage,
so the test orders their steps exactly.
"""

from __future__ import annotations

import time

from stageline.domain.items import content_hash
from stageline.engine.worker import Worker, WorkerSettings
from tests.chaos.conftest import Cluster, attempts, lost


def _worker(cluster: Cluster, name: str, lease: float) -> Worker:
    settings = WorkerSettings(concurrency=1, lease_seconds=lease, name=name,
                              inline_limit=cluster.runtime.settings.inline_limit)
    return Worker(cluster.runtime.db, cluster.runtime.blobs, cluster.runtime.handlers,
                  settings)


def test_zombie_commit_is_fenced(cluster: Cluster) -> None:
    """Inline outputs: the zombie's commit changes nothing."""
    execution_id = cluster.start("stamp", {"size": 10})
    zombie, taker = _worker(cluster, "zombie:1", 0.2), _worker(cluster, "taker:2", 30)
    [claimed] = zombie._claim()
    time.sleep(0.3)  # the zombie's lease expires without a heartbeat
    assert taker.run_once() == 1
    [committed] = cluster.values(execution_id, "stamped")

    late = zombie._run(claimed)
    zombie._commit([late])

    assert cluster.values(execution_id, "stamped") == [committed]
    assert late.outputs[0].encoded.data != cluster.items(execution_id, "stamped")[0].data
    [tries] = attempts(cluster.lineage(execution_id), "stamp_once").values()
    assert [(e.attempt, e.stage_status) for e in tries] == [(1, "failed"), (2, "completed")]
    assert len(lost(tries)) == 1


def test_zombie_cannot_overwrite_committed_blob(cluster: Cluster) -> None:
    """Offloaded outputs: the zombie writes its bytes to storage before it commits."""
    execution_id = cluster.start("stamp", {"size": 4096})
    zombie, taker = _worker(cluster, "zombie:1", 0.2), _worker(cluster, "taker:2", 30)
    [claimed] = zombie._claim()
    time.sleep(0.3)
    assert taker.run_once() == 1
    [item] = cluster.items(execution_id, "stamped")
    assert item.storage_path is not None
    committed = item.load(cluster.runtime.blobs)

    zombie._commit([zombie._run(claimed)])  # fenced, but its bytes are already written

    [item] = cluster.items(execution_id, "stamped")
    assert content_hash(item.raw(cluster.runtime.blobs)) == item.content_hash
    assert item.load(cluster.runtime.blobs) == committed
