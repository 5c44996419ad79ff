"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, text
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignoring_conflicts(conn: Connection, table: Table, rows: list[dict[str, Any]],
                              *index: str) -> None:
    """Insert rows, skipping those whose unique key already exists.

    Used where at-least-once delivery may write the same row twice: the
    first write wins, so the recorded result is exactly-once.
    """
    if not rows:
        return
    conn.execute(ignoring_conflicts(conn.dialect.name, table, index), rows)


@cache
def ignoring_conflicts(dialect: str, table: Table, index: tuple[str, ...]) -> Any:
    """Built once per table and key: the hot path reuses the compiled statement."""
    ins = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return ins.on_conflict_do_nothing(index_elements=list(index))


def skip_locked(conn: Connection) -> bool:
    """PostgreSQL lets concurrent claimers pass over each other's rows;
    SQLite has one writer at a time, so a plain select is already exclusive."""
    return conn.dialect.name == "postgresql"


WORK_CHANNEL = "stageline_work"


def notify_work(conn: Connection) -> None:
    """Tell listening workers that new work is ready, when this transaction commits.

    PostgreSQL delivers NOTIFY at commit and drops duplicates within one
    transaction; SQLite has no such channel, and its one-process server wakes
    its worker in memory instead.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {WORK_CHANNEL}"))
