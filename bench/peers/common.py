"""What every peer script shares: arguments, the W1 and W2 drivers, JSON on stdout.

A peer script runs in its own virtualenv, outside the repository, with that
venv's python. It imports only the standard library from bench/ (`spec`,
`procstat`), so the workload and the measuring are the same for every system.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import spec
from procstat import TreeMonitor

WARMUP = 5


class Engine(Protocol):
    """One peer system, started and ready to take executions."""

    def start(self, i: int) -> Any:
        """Start execution i; answer a handle to wait on."""

    def wait(self, handle: Any, poll: float) -> Any:
        """Block until the execution has finished; answer its result."""

    def records(self, executions: int) -> dict[str, dict[str, int]]:
        """Durable records in the engine's store: {name: {expected, found}}."""

    def engine_pid(self) -> int:
        """The process (tree) that does the work, for CPU and RSS."""


def arguments(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", required=True)
    p.add_argument("--workload", choices=["W1", "W2"], required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--db-url", default="")
    p.add_argument("--redis-url", default="")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/stageline-bench/work"))
    return p.parse_args()


def measure(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    driver: Callable[[Engine, argparse.Namespace], dict[str, Any]] = (
        throughput if args.workload == "W1" else latency)
    return driver(engine, args)


def throughput(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    """W1: start n executions from several client threads, then wait for all of them."""
    n = args.n
    local = threading.local()

    def start(i: int) -> Any:
        local.count = getattr(local, "count", 0) + 1
        return engine.start(i)

    with TreeMonitor(engine.engine_pid()) as usage:
        began = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            handles = list(pool.map(start, range(n)))
        results = [engine.wait(h, 0.02) for h in handles]
        elapsed = time.perf_counter() - began
    correct = sum(r == spec.expected_output(i) for i, r in enumerate(results))
    checks = {"outputs_correct": {"expected": n, "found": correct}, **engine.records(n)}
    return _result(checks, usage, n, {"steps_per_s": n * spec.STEPS / elapsed,
                                      "wall_s": elapsed},
                   {"executions": n, "client_threads": args.threads})


def latency(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    """W2: one execution at a time, start then wait with a 1 ms poll."""
    for i in range(WARMUP):
        engine.wait(engine.start(-1 - i), 0.001)
    timings, correct = [], 0
    with TreeMonitor(engine.engine_pid()) as usage:
        for i in range(args.n):
            began = time.perf_counter()
            result = engine.wait(engine.start(i), 0.001)
            timings.append((time.perf_counter() - began) * 1000)
            correct += result == spec.expected_output(i)
    checks = {"outputs_correct": {"expected": args.n, "found": correct},
              **engine.records(args.n + WARMUP)}
    return _result(checks, usage, args.n,
                   {"p50_ms": percentile(timings, 50), "p95_ms": percentile(timings, 95),
                    "max_ms": max(timings)},
                   {"executions": args.n, "warmup": WARMUP})


def _result(checks: dict[str, Any], usage: TreeMonitor, n: int, metrics: dict[str, float],
            size: dict[str, int]) -> dict[str, Any]:
    return {
        "metrics": metrics, "checks": checks,
        "ok": all(c["expected"] == c["found"] for c in checks.values()),
        "peak_rss_mb": usage.usage.peak_rss_bytes / 2**20,
        "cpu_ms_per_execution": usage.usage.cpu_seconds * 1000 / n,
        "size": size,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def emit(result: dict[str, Any], versions: dict[str, str], notes: str = "") -> None:
    """The one line of JSON the harness reads."""
    print(json.dumps({**result, "versions": versions, "notes": notes,
                      "pid": os.getpid()}), flush=True)
