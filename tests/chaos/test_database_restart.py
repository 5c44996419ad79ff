"""PostgreSQL stopped and started again during a run, under a worker process and
an API process (`serve --no-worker`): the API answers 503
database_unavailable while the database is down and 2xx after; both
processes reconnect on their own and the run completes, every item once.

PostgreSQL only: SQLite is a file inside the processes, with no server to
restart. This test stops the shared local cluster for a few seconds: other
suites using it at the same moment see their connections drop.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.chaos.conftest import BACKEND, TERMINAL, Cluster, attempts, completed
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(
    BACKEND != "postgresql", reason="SQLite has no database server to restart")

FAN_OUT = 200
CONF = Path("/etc/postgresql")


def _cluster_version() -> str:
    versions = sorted(p.name for p in CONF.iterdir()) if CONF.is_dir() else []
    if not versions:
        pytest.skip("no local PostgreSQL cluster under /etc/postgresql to restart")
    return versions[-1]


def _pg_ctl(action: str, *extra: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main",
                    action, *extra], check=True, capture_output=True, timeout=60)


def _pg_online() -> bool:
    status = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect",
                             _cluster_version(), "main", "status"], capture_output=True)
    return status.returncode == 0


@pytest.fixture
def db_url() -> Iterator[str]:
    """The shared fixture's schema, dropped through a connection opened after the
    restart (the shared one keeps a pooled connection that the restart kills)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        _admin(f'DROP SCHEMA "{schema}" CASCADE')


def _admin(sql: str) -> None:
    engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"),
                           poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture
def postgres_control() -> Iterator[None]:
    """Whatever happens in the test, PostgreSQL is running after it."""
    if not _pg_online():
        pytest.skip("the local PostgreSQL cluster is not running")
    try:
        yield
    finally:
        if not _pg_online():
            _pg_ctl("start")


def test_worker_and_api_survive_a_postgres_restart(cluster: Cluster,
                                                   postgres_control: None) -> None:
    api = cluster.server("--no-worker", name="api")
    worker = cluster.worker(STAGELINE_LEASE_SECONDS="10")
    with api.client() as http:
        # 200 items of 0.2 s on 4 threads: about 10 s of work, cut in the middle.
        before = _start(http, "before", delay=0.2)
        cluster.wait(lambda: len(cluster.items(UUID(before), "processed")) >= 20, 60,
                     "the run to be under way")

        _pg_ctl("stop", "-m", "fast")
        try:
            down = _answers_while_down(http)
        finally:
            _pg_ctl("start")
        assert down, "the API never answered while PostgreSQL was down"
        assert {(s, b.get("error_code")) for s, b in down} == {(503, "database_unavailable")}

        cluster.wait(lambda: _ok(http, "/healthz"), 30, "the API to reconnect")
        still = http.get(f"/api/v1/executions/{before}").json()["stageline_status"]
        assert still == "running", "the run ended before the restart: make it longer"
        after = _start(http, "after", delay=0)  # new work, claimed by the reconnected worker
        for execution_id in (before, after):
            body = _wait_settled(cluster, http, execution_id)
            assert body["stageline_status"] == "completed", body
    for execution_id in (before, after):
        _check_once(cluster, execution_id)
    assert worker.alive() and api.proc.alive()


def _start(http: httpx.Client, run: str, delay: float) -> str:
    answer = http.post("/api/v1/executions", json={
        "pipeline": "fan", "input": {"run": run, "n": FAN_OUT, "delay": delay}})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _answers_while_down(http: httpx.Client) -> list[tuple[int, dict[str, object]]]:
    """A few requests while PostgreSQL is down: a read and a start."""
    seen: list[tuple[int, dict[str, object]]] = []
    start = {"pipeline": "fan", "input": {"run": "down", "n": 1}}
    deadline = time.monotonic() + 5
    while len(seen) < 4 and time.monotonic() < deadline:
        for answer in (http.get("/api/v1/executions?limit=1"),
                       http.post("/api/v1/executions", json=start)):
            seen.append((answer.status_code, answer.json()))
    return seen


def _ok(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path).status_code == 200
    except httpx.TransportError:
        return False


def _wait_settled(cluster: Cluster, http: httpx.Client, execution_id: str) -> dict[str, object]:
    def settled() -> dict[str, object] | None:
        answer = http.get(f"/api/v1/executions/{execution_id}")
        body: dict[str, object] = answer.json() if answer.status_code == 200 else {}
        return body if body.get("stageline_status") in TERMINAL else None

    return cluster.wait(settled, 90, f"execution {execution_id} to settle")


def _check_once(cluster: Cluster, execution_id: str) -> None:
    eid = UUID(execution_id)
    keys = sorted(i.key for i in cluster.items(eid, "processed"))
    assert keys == [f"0/{i:05d}" for i in range(FAN_OUT)]
    by_message = attempts(cluster.lineage(eid), "process")
    assert len(by_message) == FAN_OUT
    assert all(len(completed(tries)) == 1 for tries in by_message.values())
