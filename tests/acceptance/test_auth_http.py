"""API keys and tenants over real HTTP, with keys made by the `stageline keys` CLI.

Keys of tenants `a` and `b` are created before the module's server starts;
`words` is registered for tenant `a` too (the server registers its pipelines
for the default tenant only), so tenant `a` can run it and tenant `b` cannot
see anything of `a`'s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stageline.loader import load
from stageline.store import migrate, pipelines, tenants
from stageline.store.db import Database
from tests.acceptance.conftest import (
    EXAMPLES,
    Server,
    free_port,
    start_server,
    wait_for_status,
)
from tests.conftest import BACKEND, scratch_database

API = "/api/v1/executions"
CLI = [sys.executable, "-m", "stageline.cli"]
ENV = {**os.environ, "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1"}


def stageline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, timeout=60)


def create_key(db_url: str, tenant: str, name: str) -> str:
    done = stageline("keys", "create", "--tenant", tenant, "--name", name, "--db", db_url)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def upgrade(db_url: str) -> None:
    """`stageline db upgrade`, in this process: the CLI migrates SQLite only."""
    database = Database(db_url)
    try:
        migrate.upgrade(database)
    finally:
        database.dispose()




def prepare_tenant_a(db_url: str) -> tuple[str, str]:
    """Register examples/words.py's config for tenant `a` and give `a` a second key.

    Returns the config id and the key's secret.
    """
    database = Database(db_url)
    try:
        with database.write() as conn:
            version = pipelines.register(conn, tenants.ensure_tenant(conn, "a"),
                                         load(str(EXAMPLES / "words.py"))[0].config)
            secret, _ = tenants.create_key(conn, "a", "revocable")
    finally:
        database.dispose()
    return str(version.config_id), secret


@dataclass
class Keyed:
    server: Server
    a: str  # tenant a's key
    b: str  # tenant b's key
    revocable: str  # another key of tenant a, revoked by one test
    a_config_id: str


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    directory = tmp_path_factory.mktemp("auth_http")
    with scratch_database(directory) as db_url:
        if BACKEND != "sqlite":
            upgrade(db_url)
        key_a, key_b = create_key(db_url, "a", "main"), create_key(db_url, "b", "main-b")
        config_id, revocable = prepare_tenant_a(db_url)
        server = start_server(EXAMPLES / "words.py", db_url, str(directory / "data"),
                              directory / "server.log")
        try:
            yield Keyed(server, key_a, key_b, revocable, config_id)
        finally:
            server.stop()


def as_tenant(keyed: Keyed, key: str | None) -> httpx.Client:
    return keyed.server.client(key)


def assert_error(response: httpx.Response, status: int, error_code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= {"detail", "error_code", "correlation_id", "timestamp"}
    assert body["error_code"] == error_code
    return body


def test_without_keys_a_loopback_server_is_open(server: Server) -> None:
    with server.client() as client:
        assert client.get(API).status_code == 200
        created = client.post(API, json={"pipeline": "words", "input": {"text": "a b"}})
        assert created.status_code == 201, created.text
        assert wait_for_status(client, created.json()["id"], {"completed"})["result"] == 2


@pytest.mark.parametrize(("method", "path"), [
    ("GET", API), ("POST", API), ("GET", f"{API}/{uuid.uuid4()}"),
    ("GET", f"{API}/{uuid.uuid4()}/lineage"),
])
def test_requests_without_a_key_are_401(keyed: Keyed, method: str, path: str) -> None:
    with as_tenant(keyed, None) as client:
        response = client.request(method, path, json={"pipeline": "words"}
                                  if method == "POST" else None)
    assert_error(response, 401, "missing_api_key")


def test_a_401_names_the_authentication_scheme(keyed: Keyed) -> None:
    with as_tenant(keyed, None) as client:
        response = client.get(API)
    assert response.status_code == 401
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")


@pytest.mark.parametrize("headers", [
    {"X-API-Key": "sl_not-a-real-key"},
    {"Authorization": "Bearer sl_not-a-real-key"},
], ids=["x-api-key", "bearer"])
def test_a_bad_key_is_401(keyed: Keyed, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=keyed.server.url, headers=headers, timeout=10) as client:
        assert_error(client.get(API), 401, "invalid_api_key")


def test_a_key_works_in_x_api_key_and_in_bearer(keyed: Keyed) -> None:
    for headers in ({"X-API-Key": keyed.a}, {"Authorization": f"Bearer {keyed.a}"}):
        with httpx.Client(base_url=keyed.server.url, headers=headers, timeout=10) as client:
            assert client.get(API).status_code == 200
            created = client.post(API, json={"pipeline": "words", "input": {"text": "a"}})
            assert created.status_code == 201, created.text


def same_as_unknown(found: httpx.Response, unknown: httpx.Response, ref: str,
                    unknown_ref: str) -> None:
    """A foreign execution answers exactly what an unknown one answers."""
    assert found.status_code == unknown.status_code == 404
    mine, theirs = found.json(), unknown.json()
    assert mine["error_code"] == theirs["error_code"]
    assert mine["detail"].replace(ref, "?") == theirs["detail"].replace(unknown_ref, "?")
    assert set(mine) == set(theirs)


def test_another_tenant_sees_nothing_of_an_execution(keyed: Keyed) -> None:
    tag = f"secret-{uuid.uuid4().hex[:8]}"
    with as_tenant(keyed, keyed.a) as a:
        created = a.post(API, json={"pipeline": "words", "input": {"text": "a b"}, "tag": tag})
        assert created.status_code == 201, created.text
        execution_id = created.json()["id"]
        wait_for_status(a, execution_id, {"completed"})
        assert a.get(f"{API}/{tag}").status_code == 200
    unknown_id, unknown_tag = str(uuid.uuid4()), "no-such-tag"
    with as_tenant(keyed, keyed.b) as b:
        for suffix in ("", "/lineage"):
            same_as_unknown(b.get(f"{API}/{execution_id}{suffix}"),
                            b.get(f"{API}/{unknown_id}{suffix}"), execution_id, unknown_id)
            same_as_unknown(b.get(f"{API}/{tag}{suffix}"),
                            b.get(f"{API}/{unknown_tag}{suffix}"), tag, unknown_tag)
        same_as_unknown(b.post(f"{API}/{execution_id}/cancel"),
                        b.post(f"{API}/{unknown_id}/cancel"), execution_id, unknown_id)
        same_as_unknown(b.post(f"{API}/{tag}/actions", json={"action": "reject"}),
                        b.post(f"{API}/{unknown_tag}/actions", json={"action": "reject"}),
                        tag, unknown_tag)
        listed = b.get(API, params={"limit": 500}).json()["items"]
        assert execution_id not in [e["id"] for e in listed]
        assert b.get(API, params={"tag": tag}).json()["items"] == []
    with as_tenant(keyed, keyed.a) as a:
        assert a.get(f"{API}/{execution_id}").json()["stageline_status"] == "completed"


@pytest.mark.parametrize("target", ["name", "config_id"])
def test_another_tenant_cannot_start_a_pipeline(keyed: Keyed, target: str) -> None:
    body: dict[str, Any] = ({"pipeline": "words"} if target == "name"
                            else {"config_id": keyed.a_config_id})
    with as_tenant(keyed, keyed.b) as b:
        assert_error(b.post(API, json={**body, "input": {"text": "a"}}), 404,
                     "pipeline_not_found")
        assert b.get(API, params={"limit": 500}).json()["items"] == []
    with as_tenant(keyed, keyed.a) as a:
        assert a.post(API, json={**body, "input": {"text": "a"}}).status_code == 201


def test_keys_list_shows_no_secrets(keyed: Keyed) -> None:
    listed = stageline("keys", "list", "--db", keyed.server.db_url)
    assert listed.returncode == 0, listed.stderr
    output = listed.stdout + listed.stderr
    for secret in (keyed.a, keyed.b, keyed.revocable):
        assert secret not in output
        assert secret[len("sl_"):] not in output
        assert secret[:10] in output  # the prefix that identifies it
    assert {"main", "main-b", "revocable"} <= set(output.split())


def test_a_revoked_key_stops_working(keyed: Keyed) -> None:
    with as_tenant(keyed, keyed.revocable) as client:
        assert client.get(API).status_code == 200
        revoked = stageline("keys", "revoke", keyed.revocable[:10], "--db", keyed.server.db_url)
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + 15  # the server caches keys for 5 s
        while (response := client.get(API)).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.2)
        assert_error(response, 401, "invalid_api_key")
    with as_tenant(keyed, keyed.a) as other:
        assert other.get(API).status_code == 200


def test_serve_on_a_public_address_without_keys_refuses(db_url: str, tmp_path: Path) -> None:
    if BACKEND != "sqlite":
        upgrade(db_url)
    done = subprocess.run(
        [*CLI, "serve", str(EXAMPLES / "words.py"), "--host", "0.0.0.0",
         "--port", str(free_port()), "--db", db_url, "--storage", str(tmp_path / "data")],
        capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == errors[0]
    assert "0.0.0.0" in errors[0] and "keys create" in errors[0]
