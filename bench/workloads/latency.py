"""W2: one chain5 execution at a time, POST then wait for it with the API's long-poll
(`GET /api/v1/executions/{id}?wait_seconds=30`, answered as soon as it has ended);
p50 and p95 of the time from POST to seeing it completed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import spec
from httpclient import LightClient
from procstat import TreeMonitor
from record import Measurement, all_hold, check, percentile
from sizes import Sizes

from workloads import server as server_module
from workloads.server import PIPELINES, Postgres, count_records, place, serve, wait_completed
from workloads.throughput import ITEMS_PER_EXECUTION, LINEAGE_PER_EXECUTION

WARMUP = 5


def run(config: str, sizes: Sizes, repeat: int, workdir: Path,
        pg: Postgres | None) -> list[Measurement]:
    n = sizes.w2_executions
    with place(config, workdir, pg) as where, serve(where, PIPELINES / "chain5.py") as server:
        with server.client() as client:
            for i in range(WARMUP):
                _one(client, -1 - i)
            with TreeMonitor(server.pid) as usage:
                timed = [_one(client, i) for i in range(n)]
        records = count_records(where.db_url)
    latencies = [seconds * 1000 for seconds, _ in timed]
    checks: dict[str, Any] = {}
    total = n + WARMUP
    check(checks, "outputs_correct", n, sum(ok for _, ok in timed))
    check(checks, "stage_items", total * ITEMS_PER_EXECUTION, records.stage_items)
    check(checks, "lineage_entries", total * LINEAGE_PER_EXECUTION, records.lineage_entries)
    return [Measurement(
        "stageline", config, "W2", repeat,
        metrics={"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
                 "max_ms": max(latencies)},
        checks=checks, ok=all_hold(checks),
        peak_rss_mb=usage.usage.peak_rss_bytes / 2**20,
        cpu_ms_per_execution=usage.usage.cpu_seconds * 1000 / n,
        size={"executions": n, "warmup": WARMUP, "serve_workers": server_module.SERVE_WORKERS},
    )]


def _one(client: LightClient, i: int) -> tuple[float, bool]:
    began = time.perf_counter()
    response = client.post("/api/v1/executions",
                           json={"pipeline": "chain5", "input": spec.input_of(i)})
    response.raise_for_status()
    body = wait_completed(client, str(response.json()["id"]), timeout=60)
    return time.perf_counter() - began, body["result"] == spec.expected_output(i)
