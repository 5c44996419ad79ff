"""Schema migrations: upgrade, check the revision, create new revisions.

Alembic (some 100 ms to import, most of it Mako and Pygments) is imported by
the functions that use it: every CLI command imports this module for
`SchemaMismatch`, and most of them never touch the schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stageline.store.db import Database, unavailable_on_connection_errors

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaMismatch(Exception):
    """The database is not at the revision this code was written for."""


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with unavailable_on_connection_errors(), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    cfg = _config()
    with unavailable_on_connection_errors(), db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(db: Database, revision: str) -> None:
    from alembic import command

    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def require_current(db: Database) -> None:
    """Refuse to run on a schema older (or newer) than this code."""
    current, head = current_revision(db), head_revision()
    if current != head:
        raise SchemaMismatch(
            f"database schema is at revision {current or 'none'}, this Stageline needs "
            f"{head}: run `stageline db upgrade --db ...` first"
        )


def revision(db: Database, message: str) -> None:
    """Developers: autogenerate a revision from the difference to tables.py."""
    from alembic import command

    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
