"""Processes starting at the same moment on a fresh database (`stageline db
upgrade`, then the API and N workers at once): each one's start-up creates
the default tenant and registers the pipeline versions it loaded; when two
overlap, both must end with the same tenant and the same version.

The overlap is forced with two connections of the test process, in the
order two processes can run them: the first has written but not committed
when the second looks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from sqlalchemy import Connection

from stageline.runtime import Runtime
from stageline.sdk.pipeline import Pipeline
from stageline.store import pipelines, tenants
from stageline.store.db import Database

T = TypeVar("T")

def overlapping(db: Database, write: Callable[[Connection], T]) -> tuple[T, T | BaseException]:
    """Run `write` in two transactions, the second starting before the first commits."""
    second: list[T | BaseException] = []

    def run_second() -> None:
        try:
            with db.write() as conn:
                second.append(write(conn))
        except Exception as exc:
            second.append(exc)

    with db.write() as conn:
        first = write(conn)
        thread = threading.Thread(target=run_second)
        thread.start()
        thread.join(0.5)  # SQLite: blocked in BEGIN IMMEDIATE; PostgreSQL: on the row lock
    thread.join(30)
    return first, second[0]


def _pipeline(max_tokens: int = 100) -> Pipeline:
    p = Pipeline("starting")
    p.add_step("segment", output="chunks",
               adapters=[("segment_markdown", {"max_tokens": max_tokens})])
    return p


def test_two_start_ups_create_one_tenant(runtime: Runtime) -> None:
    fresh = "fresh-tenant"
    first, second = overlapping(runtime.db, lambda c: tenants.ensure_tenant(c, fresh))
    assert not isinstance(second, BaseException), second
    assert isinstance(first, UUID)
    assert second == first


def test_two_start_ups_register_one_version(runtime: Runtime) -> None:
    assert runtime.default_tenant is not None
    tenant, config = runtime.default_tenant, _pipeline().config
    first, second = overlapping(
        runtime.db, lambda c: pipelines.register(c, tenant, config).config_id)
    assert not isinstance(second, BaseException), second
    assert second == first


def test_two_start_ups_register_one_new_version(runtime: Runtime) -> None:
    """The usual deploy: a changed pipeline file, its workers restarted together."""
    assert runtime.default_tenant is not None
    tenant = runtime.default_tenant
    with runtime.db.write() as conn:
        assert pipelines.register(conn, tenant, _pipeline(100).config).version == 1
    changed = _pipeline(200).config
    first, second = overlapping(runtime.db, lambda c: pipelines.register(c, tenant, changed))
    assert not isinstance(second, BaseException), second
    assert (second.config_id, second.version) == (first.config_id, 2)
