"""procrastinate on PostgreSQL: chain5 as five jobs, each deferring the next.

procrastinate keeps no task results, so the last job writes the execution's
result into a table of the same database, as an application would. The worker
runs in this process on an asyncio loop in a background thread (concurrency 4,
as Stageline's default); client threads defer jobs through that loop.

W2 sets `fetch_job_polling_interval` to 0.05 s (default 5 s): with the default,
one chain at a time took about 9.5 s per execution here, because the worker
often misses the notification of a job deferred while it is fetching (a lost
wake-up) and waits for the next poll. W1, always busy, keeps the default.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine
from importlib.metadata import version
from typing import Any, TypeVar

from common import Engine, arguments, emit, measure, spec
from procrastinate import App, PsycopgConnector

T = TypeVar("T")
POLLING_INTERVAL = {"W1": 5.0, "W2": 0.05}  # 5.0 is procrastinate's default
URL = os.environ.get("BENCH_PG_URL", "")
app = App(connector=PsycopgConnector(conninfo=URL))


@app.task(name="bench_step", queue="bench")
async def bench_step(d: dict[str, Any], k: int) -> None:
    d = spec.step(d, k)
    if k < spec.STEPS:
        await bench_step.defer_async(d=d, k=k + 1)
    else:
        await app.connector.execute_query_async(
            "INSERT INTO bench_results (exec, result) VALUES (%(exec)s, %(result)s)",
            exec=d["exec"], result=d)


class ProcrastinateEngine(Engine):
    def __init__(self, polling_interval: float) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.call(self._open())
        self.worker = asyncio.run_coroutine_threadsafe(app.run_worker_async(
            queues=["bench"], concurrency=4, wait=True, install_signal_handlers=False,
            fetch_job_polling_interval=polling_interval),
            self.loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _open(self) -> None:
        await app.open_async()
        await app.schema_manager.apply_schema_async()
        await app.connector.execute_query_async(
            "CREATE TABLE bench_results (exec integer PRIMARY KEY, result jsonb NOT NULL)")

    def start(self, i: int) -> int:
        self.call(bench_step.defer_async(d=spec.input_of(i), k=1))
        return i

    def wait(self, handle: int, poll: float) -> Any:
        while True:
            row = self.call(app.connector.execute_query_one_async(
                "SELECT (SELECT result FROM bench_results WHERE exec = %(exec)s) AS result",
                exec=handle))
            if row["result"] is not None:
                return row["result"]
            time.sleep(poll)

    def records(self, executions: int) -> dict[str, dict[str, int]]:
        row = self.call(app.connector.execute_query_one_async(
            "SELECT (SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded') AS jobs,"
            " (SELECT count(*) FROM bench_results) AS results"))
        return {"jobs_succeeded": {"expected": executions * spec.STEPS, "found": row["jobs"]},
                "results_stored": {"expected": executions, "found": row["results"]}}

    def engine_pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        self.worker.cancel()
        self.call(app.close_async())
        self.loop.call_soon_threadsafe(self.loop.stop)


def main() -> None:
    args = arguments(__doc__ or "")
    polling = POLLING_INTERVAL[args.workload]
    engine = ProcrastinateEngine(polling)
    try:
        result = measure(engine, args)
    finally:
        engine.close()
    emit(result, {"procrastinate": version("procrastinate"), "psycopg": version("psycopg")},
         f"worker in-process (asyncio, concurrency 4, fetch_job_polling_interval {polling} s); "
         "CPU includes the client threads")


if __name__ == "__main__":
    main()
