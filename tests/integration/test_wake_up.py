"""Idle workers wake on new work by notification, not by their poll interval:
LISTEN/NOTIFY on PostgreSQL, the in-process waker of the embedded server."""

from __future__ import annotations

import time
from typing import Any

from stageline import Pipeline
from stageline.runtime import Runtime
from stageline.store import executions
from stageline.store.db import Database
from stageline.store.executions import NewExecution
from tests.conftest import BACKEND

POLL = 30.0  # so long that finishing well before it proves a notification woke the worker


def _echo() -> Pipeline:
    p = Pipeline("echo")

    @p.step(output="out")
    def echo(doc: Any) -> Any:
        return doc

    return p


def test_an_idle_worker_wakes_when_work_arrives(runtime: Runtime) -> None:
    pipeline = _echo()
    runtime.handlers.update(pipeline.handlers)
    runtime.register([pipeline])
    runtime.settings.poll_interval = POLL
    worker = runtime.worker()
    worker.start()
    other = Database(runtime.settings.db)  # like a separate API process
    assert runtime.default_tenant is not None
    try:
        time.sleep(1.0)  # the worker has polled once and is now waiting
        with other.write() as conn:
            record, _ = executions.create(conn, runtime.default_tenant, NewExecution(
                runtime.versions["echo"], {"n": 1}), runtime.blobs, 1024)
        if BACKEND == "sqlite":
            runtime.waker.notify()  # what the embedded API does after a start
        deadline = time.monotonic() + POLL / 3
        status = record.status
        while time.monotonic() < deadline and status != "completed":
            time.sleep(0.05)
            with other.read() as conn:
                status = executions.get(conn, runtime.default_tenant, record.id).status
        assert status == "completed"
    finally:
        worker.stop()
        other.dispose()
