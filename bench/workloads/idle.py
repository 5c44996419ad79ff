"""Idle: `stageline serve` with no work: time from process start to /healthz 200,
then CPU and RSS over a quiet period."""

from __future__ import annotations

import time
from pathlib import Path

from procstat import TreeMonitor, rss_bytes, tree
from record import Measurement
from sizes import Sizes

from workloads.server import PIPELINES, Postgres, place, serve


def run(config: str, sizes: Sizes, repeat: int, workdir: Path,
        pg: Postgres | None) -> list[Measurement]:
    with place(config, workdir, pg) as where, \
            serve(where, PIPELINES / "chain5.py", workers=0) as server:
        with TreeMonitor(server.pid, interval=0.5) as usage:
            time.sleep(sizes.idle_seconds)
        rss = rss_bytes(tree(server.pid))
    return [Measurement(
        "stageline", config, "idle", repeat,
        metrics={"ready_s": server.ready_seconds,
                 "cpu_pct_of_core": 100 * usage.usage.cpu_seconds / usage.usage.wall_seconds,
                 "rss_mb": rss / 2**20},
        peak_rss_mb=usage.usage.peak_rss_bytes / 2**20, size={"seconds": int(sizes.idle_seconds)},
    )]
