"""W1: 1,000 chain5 executions started over HTTP by several client threads, run to
completion by the serve process's worker; steps per second."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import spec
from httpclient import LightClient
from procstat import TreeMonitor
from record import Measurement, all_hold, check
from sizes import Sizes

from workloads import server as server_module
from workloads.server import (
    PIPELINES,
    Postgres,
    Server,
    count_records,
    place,
    serve,
    wait_completed,
)

# Durable rows one chain5 execution leaves: the input item and one item per
# step; the input's lineage root and one entry per step; one message per step.
ITEMS_PER_EXECUTION = 1 + spec.STEPS
LINEAGE_PER_EXECUTION = 1 + spec.STEPS
MESSAGES_PER_EXECUTION = spec.STEPS


def run(config: str, sizes: Sizes, repeat: int, workdir: Path,
        pg: Postgres | None) -> list[Measurement]:
    with place(config, workdir, pg) as where, serve(where, PIPELINES / "chain5.py") as server:
        with TreeMonitor(server.pid) as usage:
            ids, elapsed = _start_and_wait(server, sizes.w1_executions, sizes.client_threads)
        checks = _check_outputs(server, ids)
        records = count_records(where.db_url)
    n = sizes.w1_executions
    check(checks, "stage_items", n * ITEMS_PER_EXECUTION, records.stage_items)
    check(checks, "lineage_entries", n * LINEAGE_PER_EXECUTION, records.lineage_entries)
    check(checks, "lineage_completed", n * spec.STEPS, records.lineage_completed)
    check(checks, "messages_completed", n * MESSAGES_PER_EXECUTION, records.messages_completed)
    return [Measurement(
        "stageline", config, "W1", repeat,
        metrics={"steps_per_s": n * spec.STEPS / elapsed, "wall_s": elapsed},
        checks=checks, ok=all_hold(checks),
        peak_rss_mb=usage.usage.peak_rss_bytes / 2**20,
        cpu_ms_per_execution=usage.usage.cpu_seconds * 1000 / n,
        size={"executions": n, "client_threads": sizes.client_threads,
              "serve_workers": server_module.SERVE_WORKERS},
    )]


def _start_and_wait(server: Server, n: int, threads: int) -> tuple[dict[str, int], float]:
    local = threading.local()

    def start(i: int) -> tuple[str, int]:
        if not hasattr(local, "client"):
            local.client = server.client()
        response = local.client.post("/api/v1/executions",
                                     json={"pipeline": "chain5", "input": spec.input_of(i)})
        response.raise_for_status()
        return str(response.json()["id"]), i

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        ids = dict(pool.map(start, range(n)))
    with server.client() as client:
        _wait_all(client, list(ids))
    return ids, time.perf_counter() - began


def _wait_all(client: LightClient, ids: list[str], timeout: float = 1800.0) -> None:
    """Wait on the executions in start order, each with the API's long-poll: one
    request at a time, answered as soon as that execution has ended."""
    deadline = time.perf_counter() + timeout
    for execution_id in ids:
        wait_completed(client, execution_id, max(1.0, deadline - time.perf_counter()))


def _check_outputs(server: Server, ids: dict[str, int]) -> dict[str, Any]:
    """Every execution's result, read back over the API, is exactly the expected dict."""
    wrong = []
    with server.client() as client:
        for execution_id, i in ids.items():
            body = client.get(f"/api/v1/executions/{execution_id}").json()
            if body["stageline_status"] != "completed" or body["result"] != spec.expected_output(i):
                wrong.append(execution_id)
    checks: dict[str, Any] = {}
    check(checks, "outputs_correct", len(ids), len(ids) - len(wrong))
    return checks
