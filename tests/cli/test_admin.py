"""`stageline executions`, `db upgrade`, `keys` and `worker`'s schema check."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from stageline.store import migrate, tenants
from stageline.store.db import Database
from tests.cli.conftest import (
    EXAMPLES,
    assert_fails_cleanly,
    stageline,
    upgrade_in_process,
)

WORDS = EXAMPLES / "words.py"


@dataclass(frozen=True)
class Ran:
    db_url: str
    execution_id: str
    tag: str


@pytest.fixture(scope="module")
def ran(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """One completed `words` execution, made by `stageline run --tag`."""
    storage = tmp_path_factory.mktemp("cli_data")
    done = stageline("run", WORDS, "--tag", "cli-show", "--input", '{"text": "a b\\nc"}',
                     "--db", module_database, "--storage", storage)
    assert done.returncode == 0, done.stderr
    found = re.search(r"^execution (\S+) of words$", done.stdout, re.MULTILINE)
    assert found, done.stdout
    return Ran(module_database, found.group(1), "cli-show")


def test_executions_list_shows_the_execution(ran: Ran) -> None:
    done = stageline("executions", "list", "--db", ran.db_url)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if ran.execution_id in line)
    assert "words" in row and "completed" in row and ran.tag in row
    failed = stageline("executions", "list", "--status", "failed", "--db", ran.db_url)
    assert failed.returncode == 0, failed.stderr
    assert ran.execution_id not in failed.stdout


@pytest.mark.parametrize("by", ["id", "tag"])
def test_executions_show_by_id_or_tag(ran: Ran, by: str) -> None:
    done = stageline("executions", "show", ran.execution_id if by == "id" else ran.tag,
                     "--db", ran.db_url)
    assert done.returncode == 0, done.stderr
    assert ran.execution_id in done.stdout
    assert re.search(r"│ status\s+completed\s+│", done.stdout), done.stdout
    assert re.search(r"│ result\s+3\s+│", done.stdout), done.stdout
    for step in ("split", "count", "total"):
        assert re.search(rf"^\s*\d+\s+{step}\s+\S+\s+completed\b", done.stdout, re.MULTILINE)


def test_executions_show_unknown_fails_in_one_line(ran: Ran) -> None:
    ref = "01a20884-bbd6-71e6-91aa-644b23e57054"
    assert ref in assert_fails_cleanly(stageline("executions", "show", ref,
                                                 "--db", ran.db_url))


def revision_of(url: str) -> str | None:
    database = Database(url)
    try:
        return migrate.current_revision(database)
    finally:
        database.dispose()


def test_db_upgrade_brings_a_database_to_head(db_url: str) -> None:
    head = migrate.head_revision()
    for _ in range(2):  # the second run has nothing to do
        done = stageline("db", "upgrade", "--db", db_url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"schema at revision {head}"
        assert revision_of(db_url) == head


def test_keys_create_list_revoke(database: str) -> None:
    created = stageline("keys", "create", "--tenant", "acme", "--name", "ci", "--db", database)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("sl_") and len(secret.splitlines()) == 1
    assert "acme" in created.stderr and "shown once" in created.stderr
    key_id = re.search(r"key (\S+) for tenant", created.stderr)
    assert key_id, created.stderr

    listed = stageline("keys", "list", "--db", database)
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if secret[:10] in line)
    assert "acme" in row and "ci" in row

    revoked = stageline("keys", "revoke", key_id.group(1), "--db", database)
    assert revoked.returncode == 0, revoked.stderr
    database_ = Database(database)
    try:
        with database_.read() as conn:
            assert tenants.authenticate(conn, secret) is None
            assert [k.revoked_at is not None for k in tenants.list_keys(conn)] == [True]
    finally:
        database_.dispose()
    again = stageline("keys", "revoke", key_id.group(1), "--db", database)
    assert key_id.group(1) in assert_fails_cleanly(again)


def test_keys_revoke_by_prefix(database: str) -> None:
    created = stageline("keys", "create", "--db", database)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    revoked = stageline("keys", "revoke", secret[:10], "--db", database)
    assert revoked.returncode == 0, revoked.stderr
    database_ = Database(database)
    try:
        with database_.read() as conn:
            assert tenants.authenticate(conn, secret) is None
    finally:
        database_.dispose()


@pytest.mark.parametrize("revision", ["base", "0001"])
def test_worker_refuses_an_old_schema(db_url: str, tmp_path: Path, revision: str) -> None:
    upgrade_in_process(db_url)
    database = Database(db_url)
    try:
        migrate.downgrade(database, revision)
    finally:
        database.dispose()
    done = stageline("worker", WORDS, "--db", db_url, "--storage", tmp_path / "data")
    assert done.returncode not in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "stageline db upgrade" in errors[0]
    assert (revision if revision != "base" else "none") in errors[0]
    assert revision_of(db_url) == (None if revision == "base" else revision)
