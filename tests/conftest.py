"""Shared fixtures. One variable picks the backend for the whole suite:

    STAGELINE_TEST_DB=sqlite      (default) a fresh SQLite file per test
    STAGELINE_TEST_DB=postgresql  a fresh schema in postgresql://127.0.0.1:5432/test
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from stageline.runtime import Runtime
from stageline.settings import Settings
from stageline.store.db import Database

BACKEND = os.environ.get("STAGELINE_TEST_DB", "sqlite")
PG_URL = os.environ.get("STAGELINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_schema_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@contextmanager
def scratch_database(directory: Path) -> Iterator[str]:
    """A URL to an empty database of the selected backend, dropped afterwards:
    a file in `directory` for SQLite, a fresh schema for PostgreSQL."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{directory / 'stageline.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # pre-ping: a test may restart PostgreSQL, leaving pooled connections dead
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"),
                          pool_pre_ping=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of the selected backend, for one test."""
    with scratch_database(tmp_path) as url:
        yield url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(db=db_url, storage=str(tmp_path / "data"), poll_interval=0.05,
                    lease_seconds=5.0, concurrency=2, inline_limit=1024)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.open(settings, migrate_schema=True)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def db(runtime: Runtime) -> Database:
    return runtime.db
