"""The settings that docs/guarantees.md's power-cut rows rest on: a power cut
cannot be staged in a test, but the settings that decide its cost can be read
back from the connections Stageline opens."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from stageline.store.db import Database, Durability
from tests.chaos.conftest import BACKEND

SQLITE_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


@pytest.mark.parametrize(("durability", "synchronous"),
                         [("normal", "NORMAL"), ("strict", "FULL")])
def test_connections_use_the_documented_durability(db_url: str, durability: Durability,
                                                   synchronous: str) -> None:
    db = Database(db_url, durability=durability)
    try:
        with db.write() as conn:
            if BACKEND == "sqlite":
                mode = conn.execute(text("PRAGMA journal_mode")).scalar_one()
                level = conn.execute(text("PRAGMA synchronous")).scalar_one()
                assert (mode, SQLITE_SYNCHRONOUS[level]) == ("wal", synchronous)
            else:
                # PostgreSQL: Stageline leaves the server's own settings alone.
                session = conn.execute(text("SHOW synchronous_commit")).scalar_one()
                server = conn.execute(text(
                    "SELECT reset_val FROM pg_settings WHERE name = 'synchronous_commit'"
                )).scalar_one()
                assert session == server
    finally:
        db.dispose()
