"""Many rows through one statement, with the driver's own executemany.

SQLAlchemy turns each row of an executemany into bound parameters one
dictionary and one type processor at a time; for the hot path's batches of
hundreds of rows that costs more than the database's own work. A `Bulk`
statement is still a Core statement, compiled by SQLAlchemy once per dialect;
only its rows skip the per-row machinery: each column's conversion is chosen
once from its type, and the rows go to the driver as they are.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Connection, Dialect, Uuid
from sqlalchemy.sql.expression import Executable

from stageline.store.db import json_text
from stageline.store.types import UTCDateTime, aware, sqlite_text

Convert = Callable[[Any], Any]


class _Plan:
    """One dialect's SQL for the statement, and how a row becomes its parameters."""

    def __init__(self, sql: str, names: list[str], converters: list[Convert | None],
                 defaults: dict[str, Any], positional: bool) -> None:
        self.sql = sql
        self.names = names
        self.defaults = defaults  # literal values the statement binds itself
        self.positional = positional
        self._get = operator.itemgetter(*names) if len(names) > 1 else (
            lambda row: (row[names[0]],))
        self._convert = [(i, c) for i, c in enumerate(converters) if c is not None]

    def row(self, values: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        out = list(self._get({**self.defaults, **values} if self.defaults else values))
        for i, convert in self._convert:
            if out[i] is not None:
                out[i] = convert(out[i])
        return tuple(out) if self.positional else dict(zip(self.names, out, strict=True))


class Bulk:
    """An INSERT or UPDATE run over many rows with the driver's executemany.

    `statement` is the statement, or a function of the dialect's name that
    builds it; `columns` names an INSERT's columns (every row gives them all).
    """

    def __init__(self, statement: Executable | Callable[[str], Executable],
                 columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.columns = list(columns) if columns is not None else None
        self._plans: dict[str, _Plan] = {}

    def execute(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        """Run the statement once per row; returns the rows affected."""
        if not rows:
            return 0
        plan = self._plans.get(conn.dialect.name) or self._plan(conn.dialect)
        params = [plan.row(r) for r in rows]
        return conn.exec_driver_sql(plan.sql, params).rowcount

    def _plan(self, dialect: Dialect) -> _Plan:
        statement = (self.statement(dialect.name) if callable(self.statement)
                     else self.statement)
        compiled: Any = statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=self.columns)
        binds = compiled.binds
        names = list(compiled.positiontup) if compiled.positional else list(binds)
        plan = _Plan(
            compiled.string, names,
            [_converter(binds[n].type, dialect) for n in names],
            {n: b.effective_value for n, b in binds.items() if not b.required},
            bool(compiled.positional),
        )
        self._plans[dialect.name] = plan
        return plan


def _converter(type_: Any, dialect: Dialect) -> Convert | None:
    """What SQLAlchemy would do to one value of this type, done directly."""
    sqlite = dialect.name == "sqlite"
    if isinstance(type_, UTCDateTime):
        return _last_value(sqlite_text) if sqlite else aware
    if isinstance(type_, Uuid):
        # SQLite keeps 32 hex digits; psycopg adapts UUID
        return _last_value(_hex) if sqlite else None
    if isinstance(type_.dialect_impl(dialect), JSON):
        if sqlite:
            return json_text
        from psycopg.types.json import Jsonb  # here: SQLite alone needs no psycopg

        return lambda value: Jsonb(value, dumps=json_text)
    return None


def _last_value(convert: Convert) -> Convert:
    """`convert`, remembering its last answer: the rows of a batch mostly share
    one execution id and one commit time, as the same objects."""
    last: tuple[Any, Any] = (object(), None)

    def converted(value: Any) -> Any:
        nonlocal last
        seen, answer = last  # one tuple, read and replaced whole: safe across threads
        if seen is value:
            return answer
        answer = convert(value)
        last = (value, answer)
        return answer

    return converted


def _hex(value: UUID | str) -> str:
    return value.hex if isinstance(value, UUID) else UUID(value).hex

