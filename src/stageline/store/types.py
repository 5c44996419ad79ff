"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, LargeBinary
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        # SQLite keeps text; dropping the offset keeps that text sortable.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite, one function each way instead of this type's step plus the
    # dialect's own (a regular expression per value read): rows of timestamps
    # are on the hot path. The text is exactly the dialect's storage format.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            return None if value is None else sqlite_text(value)

        return to_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)

        return from_text


def aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value


def sqlite_text(value: datetime) -> str:
    """A time as SQLite keeps it: UTC without offset, in the format of
    SQLAlchemy's SQLite dialect, so every writer's text sorts alike."""
    return aware(value).astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def json_type() -> TypeEngine[Any]:
    # Python None is SQL NULL, not the JSON text 'null'
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def bytes_type() -> TypeEngine[bytes]:
    return LargeBinary().with_variant(BYTEA(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)
