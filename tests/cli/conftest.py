"""Fixtures of the CLI tests: `stageline` run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from stageline.store import migrate
from stageline.store.db import Database
from tests.conftest import BACKEND, PG_URL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UNREACHABLE_DB = "postgresql://x@127.0.0.1:1/x"
# A wide terminal, so that rich tables print whole ids instead of "01a2…".
ENV = {**os.environ, "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1"}


def stageline(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`stageline ARGS...`, its output captured."""
    return subprocess.run([sys.executable, "-m", "stageline.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120)


def assert_fails_cleanly(done: subprocess.CompletedProcess[str]) -> str:
    """An expected failure: one line on stderr, no traceback, and an exit code that is
    neither success nor 1 (which `stageline run` keeps for "the execution failed")."""
    assert done.returncode not in (0, 1), (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def upgrade_in_process(url: str) -> None:
    database = Database(url)
    try:
        migrate.upgrade(database)
    finally:
        database.dispose()


@pytest.fixture
def database(db_url: str) -> str:
    """This test's database at the current schema. The CLI migrates SQLite by itself
    but, like a real deployment, wants `stageline db upgrade` on PostgreSQL."""
    if BACKEND != "sqlite":
        upgrade_in_process(db_url)
    return db_url


@pytest.fixture(scope="module")
def module_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like `database`, shared by a module's tests that only read what they made."""
    directory = tmp_path_factory.mktemp("cli_db")
    if BACKEND == "sqlite":
        yield f"sqlite:///{directory / 'stageline.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        upgrade_in_process(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
