"""Wiring: settings in, a database, stage storage, pipelines and a worker out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from uuid import UUID

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from stageline.adapters.registry import Handler
from stageline.engine.waker import Waker
from stageline.engine.worker import Worker, WorkerSettings
from stageline.loader import LoadError, load
from stageline.sdk.pipeline import Pipeline
from stageline.settings import Settings
from stageline.storage.blobs import BlobStore
from stageline.store import migrate, pipelines, tenants
from stageline.store.db import Database
from stageline.store.pipelines import Version
from stageline.store.starts import StartQueue

log = logging.getLogger("stageline")
T = TypeVar("T")


def write_racing(db: Database, create: Callable[[Connection], T], attempts: int = 3) -> T:
    """Get-or-create in a write transaction. Processes starting together may race
    to create the same row; the loser finds the winner's row on its next try."""
    for attempt in range(attempts):
        try:
            with db.write() as conn:
                return create(conn)
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    blobs: BlobStore
    waker: Waker = field(default_factory=Waker)
    handlers: dict[str, Handler] = field(default_factory=dict)
    versions: dict[str, Version] = field(default_factory=dict)
    default_tenant: UUID | None = None
    _version_cache: dict[tuple[UUID, UUID], Version] = field(default_factory=dict)
    starts: StartQueue = field(init=False)

    def __post_init__(self) -> None:
        self.starts = StartQueue(self.db)

    @classmethod
    def open(cls, settings: Settings, *, migrate_schema: bool = False) -> Runtime:
        """Connect; on the embedded default, bring the schema up to date."""
        db = Database(settings.db, pool_size=settings.pool_size,
                      durability=settings.durability)
        if migrate_schema:
            migrate.upgrade(db)
        else:
            migrate.require_current(db)
        runtime = cls(settings, db, BlobStore(settings.storage))
        runtime.default_tenant = write_racing(db, tenants.ensure_tenant)
        return runtime

    def load_pipelines(self, target: str) -> list[Pipeline]:
        """Load FILE, remember its handlers and register each config as a version."""
        loaded = load(target)
        for pipeline in loaded:
            for name, fn in pipeline.handlers.items():
                if self.handlers.get(name, fn) is not fn:
                    raise LoadError(f"adapter name {name!r} refers to two different functions")
                self.handlers[name] = fn
        self.register(loaded)
        return loaded

    def register(self, loaded: list[Pipeline]) -> None:
        for pipeline in loaded:
            version = self._register_one(pipeline)
            self.versions[pipeline.name] = version
            log.info("pipeline %s version %d (config %s)", pipeline.name, version.version,
                     version.config_id)

    def _register_one(self, pipeline: Pipeline) -> Version:
        tenant = self.default_tenant
        assert tenant is not None
        return write_racing(self.db, lambda conn: pipelines.register(conn, tenant,
                                                                     pipeline.config))

    def version(self, conn: Connection, tenant_id: UUID, config_id: UUID) -> Version:
        """A tenant's version by config id; versions are immutable, so they are cached."""
        key = (tenant_id, config_id)
        cached = self._version_cache.get(key)
        if cached is None:
            cached = pipelines.by_config_id(conn, tenant_id, config_id)
            self._version_cache[key] = cached
        return cached

    def worker(self) -> Worker:
        s = self.settings
        return Worker(self.db, self.blobs, self.handlers, WorkerSettings(
            concurrency=s.concurrency, batch_size=s.batch_size, lease_seconds=s.lease_seconds,
            poll_interval=s.poll_interval, queues=s.queue_list, inline_limit=s.inline_limit,
        ), waker=self.waker)

    def close(self) -> None:
        self.db.dispose()
