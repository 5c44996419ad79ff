"""The Alembic migrations build exactly the schema of `stageline.store.tables`,
on the selected backend, and can be undone and redone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from stageline.store import migrate
from stageline.store.db import Database
from stageline.store.migrate import SchemaMismatch
from stageline.store.tables import metadata

VERSION_TABLE = "alembic_version"


@pytest.fixture
def empty_db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    try:
        yield database
    finally:
        database.dispose()


def _differences(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "compare_server_default": True})
        return list(compare_metadata(context, metadata))


def _tables(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_upgrading_an_empty_database_gives_exactly_the_models(empty_db: Database) -> None:
    assert _tables(empty_db) == set()
    assert migrate.current_revision(empty_db) is None

    migrate.upgrade(empty_db)

    assert migrate.current_revision(empty_db) == migrate.head_revision()
    assert _tables(empty_db) == set(metadata.tables) | {VERSION_TABLE}
    assert _differences(empty_db) == []
    migrate.require_current(empty_db)


def test_downgrade_to_base_and_upgrade_again(empty_db: Database) -> None:
    migrate.upgrade(empty_db)

    migrate.downgrade(empty_db, "base")

    assert _tables(empty_db) <= {VERSION_TABLE}
    assert migrate.current_revision(empty_db) is None
    migrate.upgrade(empty_db)
    assert migrate.current_revision(empty_db) == migrate.head_revision()
    assert _differences(empty_db) == []


def test_upgrading_twice_changes_nothing(empty_db: Database) -> None:
    migrate.upgrade(empty_db)
    migrate.upgrade(empty_db)

    assert migrate.current_revision(empty_db) == migrate.head_revision()
    assert _differences(empty_db) == []


@pytest.mark.parametrize("at_base_after_upgrade", [False, True])
def test_require_current_refuses_a_database_at_base(empty_db: Database,
                                                    at_base_after_upgrade: bool) -> None:
    if at_base_after_upgrade:
        migrate.upgrade(empty_db)
        migrate.downgrade(empty_db, "base")

    with pytest.raises(SchemaMismatch, match=migrate.head_revision()):
        migrate.require_current(empty_db)


def test_the_comparison_sees_a_schema_that_drifted(empty_db: Database) -> None:
    """Guards the tests above against a comparison that finds nothing, ever."""
    migrate.upgrade(empty_db)
    with empty_db.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_executions_status"))

    diffs = _differences(empty_db)

    assert [(d[0], d[1].name) for d in diffs] == [("add_index", "ix_executions_status")]
