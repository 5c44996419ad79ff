"""A `stageline serve` subprocess on a fresh database of one backend configuration."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from httpclient import LightClient
from sqlalchemy import ColumnElement, Connection, Table, create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from stageline.domain.status import MessageStatus, StageStatus
from stageline.store.db import normalize_url
from stageline.store.tables import lineage_entries, messages, stage_items

BENCH = Path(__file__).resolve().parents[1]
PIPELINES = BENCH / "pipelines"
LONG_POLL_SECONDS = 30.0
# The backend configurations Stageline is measured on.
CONFIGS = ("sqlite", "sqlite-strict", "postgresql")


def backend_of(config: str) -> str:
    return "postgresql" if config == "postgresql" else "sqlite"


@dataclass(frozen=True)
class Place:
    """Where one run keeps its state."""

    config: str
    db_url: str
    storage: Path
    env: dict[str, str]


class Postgres:
    """Creates and drops the throwaway databases of a run (trust auth, loopback)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.engine = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT",
                                    pool_pre_ping=True)

    def url_of(self, name: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{name}"

    @contextmanager
    def database(self, prefix: str = "bench_stageline") -> Iterator[str]:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._admin(f'CREATE DATABASE "{name}"')
        try:
            yield self.url_of(name)
        finally:
            self.drop(name)

    def drop(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str, attempts: int = 5) -> None:
        """Run one statement, riding out a server restart (the chaos tests of a
        concurrent suite restart PostgreSQL on this machine)."""
        for attempt in range(attempts):
            try:
                with self.engine.connect() as conn:
                    conn.execute(text(statement))
                return
            except OperationalError:
                if attempt == attempts - 1:
                    raise
                time.sleep(2)


@contextmanager
def place(config: str, workdir: Path, pg: Postgres | None) -> Iterator[Place]:
    """A fresh database and storage folder for one run, removed afterwards."""
    run_dir = workdir / f"run-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    durability = "strict" if config == "sqlite-strict" else "normal"
    env = {"STAGELINE_DURABILITY": durability}
    try:
        if backend_of(config) == "postgresql":
            assert pg is not None, "PostgreSQL configuration without an admin URL"
            with pg.database() as url:
                yield Place(config, url, run_dir / "data", env)
        else:
            yield Place(config, f"sqlite:///{run_dir / 'stageline.db'}", run_dir / "data", env)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    ready_seconds: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> LightClient:
        return LightClient(self.url, timeout=60)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def stageline(*args: str) -> list[str]:
    return [sys.executable, "-m", "stageline.cli", *args]


def upgrade(where: Place) -> None:
    """PostgreSQL is migrated explicitly; embedded SQLite migrates itself at start."""
    if backend_of(where.config) == "postgresql":
        subprocess.run(stageline("db", "upgrade", "--db", where.db_url), check=True,
                       capture_output=True)


# Worker processes beside the API for the workloads that run work (W1, W2, W3);
# `bench/run.py --serve-workers` sets it. Idle and W4 measure the one-process default.
SERVE_WORKERS = 1


@contextmanager
def serve(where: Place, pipeline_file: Path, extra_env: dict[str, str] | None = None,
          workers: int | None = None) -> Iterator[Server]:
    """`stageline serve FILE [--workers N]` with its defaults, until /healthz answers
    200; `workers` None means SERVE_WORKERS."""
    upgrade(where)
    port = free_port()
    log = where.storage.parent / "serve.log"
    count = SERVE_WORKERS if workers is None else workers
    cmd = stageline("serve", str(pipeline_file), "--db", where.db_url, "--storage",
                    str(where.storage), "--port", str(port), "--workers", str(count))
    env = {**os.environ, **where.env, **(extra_env or {})}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", proc, log, 0.0)
    try:
        server.ready_seconds = _wait_ready(server, started)
        yield server
    finally:
        server.stop()


def _wait_ready(server: Server, started: float, timeout: float = 60.0) -> float:
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"stageline serve exited:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"stageline serve not ready in {timeout} s:\n{server.log.read_text()}")


@dataclass(frozen=True)
class Records:
    """Durable rows in Stageline's store."""

    stage_items: int
    lineage_entries: int
    lineage_completed: int
    messages: int
    messages_completed: int


def count_records(db_url: str) -> Records:
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return Records(
                stage_items=_count(conn, stage_items),
                lineage_entries=_count(conn, lineage_entries),
                lineage_completed=_count(conn, lineage_entries, lineage_entries.c.stage_status
                                         == StageStatus.COMPLETED),
                messages=_count(conn, messages),
                messages_completed=_count(conn, messages,
                                          messages.c.status == MessageStatus.COMPLETED),
            )
    finally:
        engine.dispose()


def _count(conn: Connection, table: Table, *where: ColumnElement[bool]) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def wait_completed(client: LightClient, execution_id: str,
                   timeout: float = 600.0) -> dict[str, object]:
    """Wait until the execution has ended, with the API's long-poll (`wait_seconds`:
    the server answers as soon as the status changes); raise unless it completed."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        wait = max(0.0, min(LONG_POLL_SECONDS, deadline - time.perf_counter()))
        body: dict[str, object] = client.get(f"/api/v1/executions/{execution_id}",
                                             params={"wait_seconds": wait},
                                             timeout=wait + 30).json()
        status = body.get("stageline_status")
        if status == "completed":
            return body
        if status not in ("pending", "running"):
            raise RuntimeError(f"execution {execution_id} ended {status}: {body.get('error')}")
    raise TimeoutError(f"execution {execution_id} did not complete in {timeout} s")


def items_by_stage(db_url: str, execution_id: str) -> dict[str, int]:
    """How many stage items one execution holds itself, per stage (references excluded)."""
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(stage_items.c.stage_name, func.count())
                .where(stage_items.c.execution_id == uuid.UUID(execution_id))
                .group_by(stage_items.c.stage_name))
            return {str(stage): int(count) for stage, count in rows}
    finally:
        engine.dispose()
