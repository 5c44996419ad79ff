"""Chaos fixtures: real `stageline worker` and `stageline serve` processes on the
suite's backend, killed with SIGKILL, and polling helpers with deadlines.

The test process opens the same database (the shared `runtime` fixture, which
also brings the schema up to date) to register the pipelines, start
executions and read back what the workers recorded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
import pytest

from stageline.domain.status import EXECUTION_TERMINAL, StageStatus
from stageline.runtime import Runtime
from stageline.store import executions, lineage
from stageline.store.executions import NewExecution
from stageline.store.items import StoredItem
from stageline.store.records import ExecutionRecord, LineageRecord, StepRunRecord
from stageline.store.stages import read_stage
from tests.acceptance.conftest import free_port
from tests.conftest import BACKEND

__all__ = ["BACKEND", "Cluster", "Proc", "Server", "wait_until"]

T = TypeVar("T")
PIPELINES = Path(__file__).with_name("pipelines.py")
TERMINAL = frozenset(str(s) for s in EXECUTION_TERMINAL)
ALL = 10_000_000


def wait_until(check: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.02, details: Callable[[], str] = lambda: "") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{details()}")
        time.sleep(interval)


@dataclass
class Proc:
    """One `stageline` child process with its combined output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler, no finally, no flush; the process is gone."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for a clean exit (SIGKILL if it takes too long)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Server:
    url: str
    proc: Proc

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


@dataclass
class Cluster:
    """A database, a storage folder, the chaos pipelines and the processes on them."""

    tmp: Path
    runtime: Runtime
    pipeline_file: Path
    marks: Path
    procs: list[Proc] = field(default_factory=list)

    @property
    def db_url(self) -> str:
        return self.runtime.settings.db

    @property
    def storage(self) -> str:
        return self.runtime.settings.storage

    def env(self, **overrides: str) -> dict[str, str]:
        base = {"STAGELINE_POLL_INTERVAL": "0.05", "STAGELINE_LEASE_SECONDS": "2",
                "STAGELINE_INLINE_LIMIT": str(self.runtime.settings.inline_limit),
                "CHAOS_MARKS": str(self.marks), "PYTHONUNBUFFERED": "1"}
        return {**os.environ, **base, **overrides}

    # -- processes ---------------------------------------------------------

    def spawn(self, name: str, *args: str, **env: str) -> Proc:
        log = self.tmp / f"{name}.log"
        cmd = [sys.executable, "-m", "stageline.cli", *args, str(self.pipeline_file),
               "--db", self.db_url, "--storage", self.storage]
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                       env=self.env(**env))
        proc = Proc(name, process, log)
        self.procs.append(proc)
        return proc

    def worker(self, name: str = "worker", **env: str) -> Proc:
        """`stageline worker FILE`; env overrides STAGELINE_* settings."""
        return self.spawn(name, "worker", **env)

    def server(self, *extra: str, name: str = "server", **env: str) -> Server:
        """`stageline serve FILE --port P`, once /healthz answers."""
        port = free_port()
        proc = self.spawn(name, "serve", "--port", str(port), *extra, **env)
        server = Server(f"http://127.0.0.1:{port}", proc)

        def healthy() -> bool:
            if not proc.alive():
                raise AssertionError(f"{name} exited:\n{proc.output()}")
            try:
                return httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 30, f"{name} to answer /healthz", interval=0.05)
        return server

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                proc.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.output()[-3000:]}"
                         for p in self.procs)

    def wait(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """wait_until, with the tail of every process's log on a time-out."""
        return wait_until(check, timeout, what, details=self.logs)

    # -- markers -------------------------------------------------------------

    def marker(self, name: str) -> Path:
        return self.marks / name

    def wait_for_marker(self, name: str, timeout: float = 60) -> int:
        """Wait for a hanging handler's marker; returns the pid that wrote it."""
        path = self.marker(name)
        self.wait(lambda: path.exists() and path.read_text(), timeout, f"marker {name}")
        return int(path.read_text())

    # -- the database, read and written from the test process --------------

    def start(self, pipeline: str, payload: Any) -> UUID:
        tenant = self.tenant
        new = NewExecution(self.runtime.versions[pipeline], payload)
        with self.runtime.db.write() as conn:
            record, _ = executions.create(conn, tenant, new, self.runtime.blobs,
                                          self.runtime.settings.inline_limit)
        return record.id

    @property
    def tenant(self) -> UUID:
        assert self.runtime.default_tenant is not None
        return self.runtime.default_tenant

    def execution(self, execution_id: UUID) -> ExecutionRecord:
        with self.runtime.db.read() as conn:
            return executions.get(conn, self.tenant, execution_id)

    def wait_settled(self, execution_ids: list[UUID],
                     timeout: float) -> dict[UUID, ExecutionRecord]:
        """Wait until every execution is in a terminal status."""
        def settled() -> dict[UUID, ExecutionRecord] | None:
            records = {e: self.execution(e) for e in execution_ids}
            done = all(r.status in TERMINAL for r in records.values())
            return records if done else None

        return self.wait(settled, timeout, f"{len(execution_ids)} executions to settle")

    def steps(self, execution_id: UUID) -> list[StepRunRecord]:
        with self.runtime.db.read() as conn:
            return executions.steps_of(conn, execution_id)

    def lineage(self, execution_id: UUID) -> list[LineageRecord]:
        with self.runtime.db.read() as conn:
            _, entries = lineage.for_execution(conn, execution_id, ALL)
        return entries

    def items(self, execution_id: UUID, stage: str) -> list[StoredItem]:
        with self.runtime.db.read() as conn:
            return read_stage(conn, execution_id, stage)

    def values(self, execution_id: UUID, stage: str) -> list[Any]:
        return [i.load(self.runtime.blobs) for i in self.items(execution_id, stage)]


@pytest.fixture
def cluster(runtime: Runtime, tmp_path: Path) -> Iterator[Cluster]:
    """The chaos pipelines registered on this test's database; every process
    started through it is SIGKILLed at teardown if it is still running."""
    pipeline_file = tmp_path / "chaos_pipelines.py"
    shutil.copy(PIPELINES, pipeline_file)
    marks = tmp_path / "marks"
    marks.mkdir()
    # Registering here, before any worker starts, keeps the workers from
    # racing to create the tenant and the versions (see test_concurrent_start).
    runtime.load_pipelines(str(pipeline_file))
    cluster = Cluster(tmp_path, runtime, pipeline_file, marks)
    try:
        yield cluster
    finally:
        cluster.close()


# -- reading lineage ----------------------------------------------------------


def attempts(entries: list[LineageRecord], route: str) -> dict[str, list[LineageRecord]]:
    """A route's lineage entries grouped by correlation id, oldest attempt first."""
    grouped: dict[str, list[LineageRecord]] = defaultdict(list)
    for entry in sorted(entries, key=lambda e: e.attempt):
        if entry.route_id == route:
            grouped[entry.correlation_id].append(entry)
    return grouped


def completed(entries: list[LineageRecord]) -> list[LineageRecord]:
    return [e for e in entries if e.stage_status == StageStatus.COMPLETED]


def lost(entries: list[LineageRecord]) -> list[LineageRecord]:
    """Attempts that a dead worker never committed, closed by the next claimer."""
    return [e for e in entries if e.stage_status == StageStatus.FAILED
            and (e.error_info or {}).get("type") == "LeaseExpired"]


def worker_pid(entry: LineageRecord) -> int:
    """The pid of the worker that made an attempt (its name is host:pid)."""
    return int(str((entry.meta or {})["worker"]).rsplit(":", 1)[1])
