"""W3: one document fans out to N items, two steps per item, one collect: item-steps
per second and the serve process's peak RSS.

W5 (on the same execution, once it has completed): storage replay of its last step
from the stage that step reads, timed against the full run; no stage before the
replayed step may gain a stored item. A second, larger replay (the last per-item
step and everything after it) is reported for scale, without a target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from httpclient import LightClient
from procstat import TreeMonitor
from record import Measurement, all_hold, check
from sizes import Sizes

from workloads import server as server_module
from workloads.server import (
    PIPELINES,
    Place,
    Postgres,
    Server,
    count_records,
    items_by_stage,
    place,
    serve,
    wait_completed,
)

PER_ITEM_STEPS = 2


@dataclass(frozen=True)
class Replay:
    """One replay: which stage is read again and which step runs from there on."""

    name: str
    from_stage: str
    to_route: str
    expected_items: dict[str, int]  # the child's own stored items per stage


def replays(n: int) -> list[Replay]:
    return [
        Replay("last_step", "scored", "summarize", {"summary": 1}),
        Replay("last_item_step", "enriched", "score", {"scored": n, "summary": 1}),
    ]


def expected_summary(n: int) -> dict[str, int]:
    return {"count": n, "a": n, "b": sum(i % 7 for i in range(n)), "i": n * (n - 1) // 2}


def run(config: str, sizes: Sizes, repeat: int, workdir: Path, pg: Postgres | None, *,
        items: int | None = None, with_replay: bool = True) -> list[Measurement]:
    """W3 at `items` (default: the preset's size), then W5 on its execution."""
    items = items or sizes.w3_items
    with place(config, workdir, pg) as where, serve(where, PIPELINES / "fanout.py") as server:
        with server.client() as client, TreeMonitor(server.pid) as usage:
            execution_id, result, elapsed = _run_fanout(client, items)
        measured = [_fanout_measurement(config, items, repeat, where, result, elapsed, usage)]
        if with_replay:
            measured.append(_replay_measurement(config, items, repeat, where, server,
                                                execution_id, result, elapsed))
    return measured


def _run_fanout(client: LightClient, n: int) -> tuple[str, Any, float]:
    began = time.perf_counter()
    response = client.post("/api/v1/executions",
                           json={"pipeline": "fanout", "input": {"doc": "d", "n": n}})
    response.raise_for_status()
    execution_id = str(response.json()["id"])
    body = wait_completed(client, execution_id, timeout=3600)
    return execution_id, body["result"], time.perf_counter() - began


def _fanout_measurement(config: str, n: int, repeat: int, where: Place, result: Any,
                        elapsed: float, usage: TreeMonitor) -> Measurement:
    records = count_records(where.db_url)
    checks: dict[str, Any] = {}
    check(checks, "result", expected_summary(n), result)
    # input + items + enriched + scored + summary; root + split + 2 per item + collect
    check(checks, "stage_items", 1 + 3 * n + 1, records.stage_items)
    check(checks, "lineage_entries", 1 + 1 + PER_ITEM_STEPS * n + 1, records.lineage_entries)
    return Measurement(
        "stageline", config, "W3", repeat,
        metrics={"item_steps_per_s": PER_ITEM_STEPS * n / elapsed, "wall_s": elapsed},
        checks=checks, ok=all_hold(checks),
        peak_rss_mb=usage.usage.peak_rss_bytes / 2**20,
        cpu_ms_per_execution=usage.usage.cpu_seconds * 1000,
        size={"items": n, "serve_workers": server_module.SERVE_WORKERS},
    )


def _replay_measurement(config: str, n: int, repeat: int, where: Place, server: Server,
                        parent_id: str, parent_result: Any, full_s: float) -> Measurement:
    metrics: dict[str, float] = {"full_s": full_s}
    checks: dict[str, Any] = {}
    before = count_records(where.db_url).stage_items
    added = 0
    with server.client() as client:
        for replay in replays(n):
            child_id, result, elapsed = _run_replay(client, parent_id, replay)
            metrics[f"{replay.name}_s"] = elapsed
            metrics[f"{replay.name}_pct_of_full"] = 100 * elapsed / full_s
            check(checks, f"{replay.name}_result", parent_result, result)
            check(checks, f"{replay.name}_child_items", replay.expected_items,
                  items_by_stage(where.db_url, child_id))
            added += sum(replay.expected_items.values())
    check(checks, "stage_items_added", added, count_records(where.db_url).stage_items - before)
    return Measurement("stageline", config, "W5", repeat, metrics=metrics, checks=checks,
                       ok=all_hold(checks),
                       size={"items": n, "serve_workers": server_module.SERVE_WORKERS})


def _run_replay(client: LightClient, parent_id: str, replay: Replay) -> tuple[str, Any, float]:
    began = time.perf_counter()
    response = client.post(f"/api/v1/executions/{parent_id}/replay", json={
        "replay_source": "storage", "from_stage": replay.from_stage,
        "to_route": replay.to_route})
    response.raise_for_status()
    child_id = str(response.json()["id"])
    body = wait_completed(client, child_id, timeout=3600)
    return child_id, body["result"], time.perf_counter() - began
