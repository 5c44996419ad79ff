"""Celery with Redis as broker and result backend: chain5 as a chain of five tasks.

This module is both the Celery app (the worker imports it by name) and the
driver (run as a script). The worker is a separate process (prefork pool, one
child per core); CPU and RSS are the worker's process tree, not the driver's.
Executions start with `chain(...).apply_async()`: no HTTP layer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from celery import Celery, chain
from celery.result import AsyncResult
from common import Engine, arguments, emit, measure, spec

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                worker_hijack_root_logger=False)


@app.task(name="bench.step")
def step(d: dict[str, Any], k: int) -> dict[str, Any]:
    return spec.step(d, k)


class CeleryEngine(Engine):
    def __init__(self, concurrency: int) -> None:
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.redis.flushdb()  # this Redis database is the benchmark's alone
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_peer", "worker", "--pool", "prefork",
             "--concurrency", str(concurrency), "--loglevel", "WARNING", "--without-gossip",
             "--without-mingle", "--without-heartbeat"],
            cwd=Path(__file__).parent, env={**os.environ, "BENCH_REDIS_URL": REDIS_URL})
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if app.control.ping(timeout=0.5):
                return
        raise RuntimeError("celery worker did not answer a ping")

    def start(self, i: int) -> AsyncResult:
        return chain(step.s(spec.input_of(i), 1),
                     *(step.s(k) for k in range(2, spec.STEPS + 1))).apply_async()

    def wait(self, handle: AsyncResult, poll: float) -> Any:
        return handle.get(timeout=600, interval=poll)

    def records(self, executions: int) -> dict[str, dict[str, int]]:
        kept = sum(1 for _ in self.redis.scan_iter("celery-task-meta-*", count=1000))
        return {"task_results": {"expected": executions * spec.STEPS, "found": kept}}

    def engine_pid(self) -> int:
        return self.worker.pid

    def close(self) -> None:
        self.worker.terminate()
        self.worker.wait(30)
        self.redis.flushdb()


def main() -> None:
    args = arguments(__doc__ or "")
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    engine = CeleryEngine(concurrency=os.cpu_count() or 1)
    try:
        result = measure(engine, args)
    finally:
        engine.close()
    info = redis.Redis.from_url(args.redis_url).info("server")
    emit(result, {"celery": version("celery"), "kombu": version("kombu"),
                  "redis-py": version("redis"), "redis-server": str(info["redis_version"])},
         "prefork worker, one child per core; CPU is the worker's tree")


if __name__ == "__main__":
    main()
