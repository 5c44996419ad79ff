"""W4: lineage reads on a database with many entries: seed 000's page of one
execution, one item's chain, and a filtered list across executions; p95 each."""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from httpclient import LightClient, Response
from procstat import TreeMonitor
from record import Measurement, all_hold, check, percentile
from sizes import Sizes

from workloads.lineage_data import Dataset, build, cached_sqlite
from workloads.server import PIPELINES, Place, Postgres, backend_of, serve

WARMUP = 3
Query = Callable[[LightClient, int], tuple[Response, bool]]


@contextmanager
def dataset(config: str, sizes: Sizes, workdir: Path,
            pg: Postgres | None) -> Iterator[tuple[Place, Dataset]]:
    """The W4 database: the cached SQLite file, or a PostgreSQL database built now."""
    storage = workdir / "w4-data"
    try:
        if backend_of(config) == "sqlite":
            url, data = cached_sqlite(sizes.w4_executions, sizes.w4_entries_per_execution)
            yield Place(config, url, storage, {}), data
        else:
            assert pg is not None
            with pg.database("bench_stageline_lineage") as url:
                data = build(url, sizes.w4_executions, sizes.w4_entries_per_execution, storage)
                yield Place(config, url, storage, {}), data
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def run(where: Place, data: Dataset, sizes: Sizes, repeat: int) -> list[Measurement]:
    metrics: dict[str, float] = {}
    checks: dict[str, Any] = {}
    notes = []
    with serve(where, PIPELINES / "fanout.py", workers=0) as server, server.client() as client:
        routes = set(client.get("/openapi.json").json()["paths"])
        with TreeMonitor(server.pid) as usage:
            for name, path, query in _queries(data):
                if path not in routes:
                    notes.append(f"{name}: not available ({path} is not served)")
                    continue
                latencies, correct = _time(client, query, sizes.w4_requests)
                metrics[f"{name}_p50_ms"] = percentile(latencies, 50)
                metrics[f"{name}_p95_ms"] = percentile(latencies, 95)
                check(checks, f"{name}_responses_correct", sizes.w4_requests, correct)
    return [Measurement("stageline", where.config, "W4", repeat, metrics=metrics, checks=checks,
                       ok=all_hold(checks), peak_rss_mb=usage.usage.peak_rss_bytes / 2**20,
                       size={"entries": data.entries, "requests": sizes.w4_requests},
                       notes="; ".join(notes))]


def _time(client: LightClient, query: Query, n: int) -> tuple[list[float], int]:
    for i in range(WARMUP):
        query(client, i)
    latencies, correct = [], 0
    for i in range(n):
        began = time.perf_counter()
        response, ok = query(client, WARMUP + i)
        latencies.append((time.perf_counter() - began) * 1000)
        correct += ok and response.status_code == 200
    return latencies, correct


def _queries(data: Dataset) -> list[tuple[str, str, Query]]:
    samples = list(data.chain_samples)
    random.Random(1).shuffle(samples)
    per_execution = 2 + 2 * data.items_per_execution

    def page(client: LightClient, _: int) -> tuple[Response, bool]:
        r = client.get(f"/api/v1/executions/{data.page_execution}/lineage",
                       params={"limit": 1000})
        body = r.json()
        return r, body["total"] == per_execution and len(body["entries"]) == min(
            1000, per_execution)

    def chain(client: LightClient, i: int) -> tuple[Response, bool]:
        r = client.get(f"/api/v1/lineage/{samples[i % len(samples)]}/chain")
        body = r.json()
        shape = [len(body.get(k, [])) for k in ("ancestors", "entries", "descendants")]
        return r, shape == [2, 1, 1]

    def filtered(client: LightClient, _: int) -> tuple[Response, bool]:
        r = client.get("/api/v1/lineage", params={"route_id": "score", "limit": 100})
        items = r.json().get("items", [])
        return r, len(items) == 100 and all(e["route_id"] == "score" for e in items)

    return [("page", "/api/v1/executions/{execution_id}/lineage", page),
            ("chain", "/api/v1/lineage/{correlation_id}/chain", chain),
            ("filter", "/api/v1/lineage", filtered)]
