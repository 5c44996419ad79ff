"""`stageline run`: one execution, start to end, with a live view of its steps."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live

from stageline.cli import render
from stageline.domain.status import EXECUTION_TERMINAL, ExecutionStatus
from stageline.runtime import Runtime
from stageline.store import executions
from stageline.store.executions import NewExecution

# `run` ends at a terminal status, or at a review gate: nobody in this process can act on it
STOPS = EXECUTION_TERMINAL | {ExecutionStatus.IN_REVIEW}


def run_to_end(runtime: Runtime, pipeline: str, payload: Any, tag: str | None,
               console: Console) -> bool:
    """Start, work until the execution ends, print a summary. True if it completed."""
    assert runtime.default_tenant is not None
    tenant = runtime.default_tenant
    with runtime.db.write() as conn:
        record, _ = executions.create(conn, tenant, NewExecution(
            runtime.versions[pipeline], payload, tag=tag), runtime.blobs,
            runtime.settings.inline_limit)
    console.print(f"execution {record.id} of {pipeline}")
    worker = runtime.worker()
    worker.start()
    try:
        with Live(console=console, refresh_per_second=8, transient=True) as live:
            while True:
                with runtime.db.read() as conn:
                    record = executions.get(conn, tenant, record.id)
                    steps = executions.steps_of(conn, record.id)
                live.update(render.steps_table(steps))
                if ExecutionStatus(record.status) in STOPS:
                    break
                time.sleep(0.1)
    finally:
        worker.stop()
    console.print(render.steps_table(steps))
    console.print(render.execution_panel(record, runtime.versions[pipeline]))
    if record.status == ExecutionStatus.IN_REVIEW:
        console.print(f"waiting for review: approve or reject with POST "
                      f"/api/v1/executions/{record.id}/actions on a running server")
    return record.status == ExecutionStatus.COMPLETED
