"""Connecting to the database. SQLite and PostgreSQL differ here and in
`dialect.py`, nowhere else."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

import orjson

try:
    import fcntl
except ImportError:  # not on Windows: threads still queue, processes meet the busy timeout
    fcntl = None  # type: ignore[assignment]
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

Durability = Literal["normal", "strict"]
READONLY = "stageline_readonly"


class DatabaseUnavailable(Exception):
    """The database could not be reached or answered with a connection error."""


def json_text(value: Any) -> str:
    """How JSON columns are written: orjson, numpy values included."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _json_loads(value: Any) -> Any:
    # SQLite gives JSON columns NUMERIC affinity: a stored `3` comes back as
    # the integer 3, not the text "3".
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` and file paths; pick psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


class Database:
    """One engine plus the two kinds of transaction the store uses."""

    def __init__(self, url: str, *, pool_size: int = 10, durability: Durability = "normal",
                 echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.engine = self._create(pool_size, durability, echo)
        self._writer = WriterLock(make_url(self.url).database) if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create(self, pool_size: int, durability: Durability, echo: bool) -> Engine:
        common: dict[str, Any] = {
            "json_serializer": json_text,
            "json_deserializer": _json_loads,
            "echo": echo,
        }
        if self.is_sqlite:
            _make_parent(self.url)
            engine = create_engine(self.url, connect_args={"check_same_thread": False,
                                                           "timeout": 30}, **common)
            _configure_sqlite(engine, durability)
            return engine
        return create_engine(self.url, pool_size=pool_size, max_overflow=pool_size,
                             pool_pre_ping=True, pool_recycle=1800, **common)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A read-write transaction, committed on exit."""
        with (self._writer or nullcontext()), unavailable_on_connection_errors(), \
                self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: on SQLite it does not take the write lock."""
        with unavailable_on_connection_errors(), self.engine.connect() as conn:
            conn = conn.execution_options(**{READONLY: True})
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()
        if self._writer is not None:
            self._writer.close()


@contextmanager
def unavailable_on_connection_errors() -> Iterator[None]:
    """Lost or refused connections become DatabaseUnavailable (HTTP 503, CLI one-liner)."""
    try:
        yield
    except (OperationalError, DBAPIError) as exc:
        if exc.connection_invalidated or _is_connection_error(exc):
            first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
            raise DatabaseUnavailable(f"database unavailable: {first}") from exc
        raise


def _is_connection_error(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return any(s in text for s in ("connection", "could not connect", "server closed",
                                   "terminating", "unable to open database"))


class WriterLock:
    """SQLite has one writer at a time: writers queue for it here.

    Threads of this process wait on a lock, processes on an advisory lock of a
    file beside the database; both wake the moment the writer is done. Waiting
    in SQLite's busy handler instead sleeps in steps of up to 100 ms, which
    makes a steady writer starve the others. Re-entrant within a thread.
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._file: Any = None
        self._path: Path | None = None
        if fcntl is not None and database and database != ":memory:" \
                and not database.startswith("file:"):
            self._path = Path(database).expanduser().with_name(
                Path(database).name + ".writer-lock")

    def __enter__(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1 and self._path is not None:
            try:
                if self._file is None:
                    self._file = open(self._path, "a+b")  # kept open: one per Database
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
            except BaseException:
                self._depth -= 1
                self._threads.release()
                raise

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._file is not None:
                self._file.close()
                self._file = None


def _make_parent(url: str) -> None:
    """A new embedded database may live in a folder that does not exist yet."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine, durability: Durability) -> None:
    synchronous = "FULL" if durability == "strict" else "NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN can be IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA cache_size=-16384")  # 16 MB per connection; the OS caches the file too
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front: a deferred transaction that later
        # writes can fail with SQLITE_BUSY instead of waiting its turn.
        readonly = conn.get_execution_options().get(READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
