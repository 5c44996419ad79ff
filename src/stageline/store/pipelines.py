"""Pipelines and their immutable versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, Select, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from stageline.domain.config import PipelineConfig
from stageline.store.dialect import insert_ignoring_conflicts
from stageline.store.ids import new_id
from stageline.store.tables import pipeline_versions, pipelines
from stageline.store.types import utcnow


@dataclass(frozen=True)
class Version:
    config_id: UUID
    pipeline_id: UUID
    pipeline: str
    version: int
    config: PipelineConfig
    created_at: datetime

    @cached_property
    def snapshot(self) -> dict[str, Any]:
        """The config's JSON form, built once: versions are immutable, and
        every execution read answers it."""
        return self.config.snapshot()


@dataclass(frozen=True)
class VersionInfo:
    """A version without its config, as listed."""

    config_id: UUID
    pipeline: str
    version: int
    created_at: datetime


@dataclass(frozen=True)
class PipelineInfo:
    """A pipeline with its latest version."""

    id: UUID
    name: str
    created_at: datetime
    archived_at: datetime | None
    latest_version: int
    latest_config_id: UUID
    updated_at: datetime  # when the latest version was created

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


class UnknownPipeline(LookupError):
    pass


class PipelineExists(Exception):
    """The tenant already has a pipeline of that name (archived or not)."""


class PipelineArchived(Exception):
    """The pipeline is archived: it takes no new versions and starts no executions."""


def register(conn: Connection, tenant_id: UUID, config: PipelineConfig) -> Version:
    """The version for this exact config, creating one only if it changed.

    Safe when processes start together: the pipeline row is created without
    conflict and then locked, so a second registrar waits and finds the first's
    version instead of numbering its own.
    """
    _ensure_pipeline(conn, tenant_id, config.name)
    locked = _pipeline_row(conn, tenant_id, config.name, lock=True)
    assert locked is not None
    pipeline_id = UUID(str(locked.id))
    digest = config.config_hash()
    existing = conn.execute(
        _version_query().where(pipeline_versions.c.pipeline_id == pipeline_id,
                               pipeline_versions.c.config_hash == digest)
    ).first()
    if existing is not None:
        return _to_version(existing)
    number = conn.execute(
        select(func.coalesce(func.max(pipeline_versions.c.version), 0))
        .where(pipeline_versions.c.pipeline_id == pipeline_id)
    ).scalar_one() + 1
    return _insert_version(conn, pipeline_id, number, config)


def create(conn: Connection, tenant_id: UUID, config: PipelineConfig) -> Version:
    """A new pipeline with `config` as its version 1.

    Raises PipelineExists when the tenant already has a pipeline of that name.
    """
    if _pipeline_row(conn, tenant_id, config.name) is not None:
        raise PipelineExists(f"pipeline {config.name!r} already exists")
    pipeline_id = new_id()
    try:
        conn.execute(pipelines.insert().values(id=pipeline_id, tenant_id=tenant_id,
                                               name=config.name, created_at=utcnow()))
    except IntegrityError as exc:  # created concurrently by another transaction
        raise PipelineExists(f"pipeline {config.name!r} already exists") from exc
    return _insert_version(conn, pipeline_id, 1, config)


def publish(conn: Connection, tenant_id: UUID, config: PipelineConfig) -> tuple[Version, bool]:
    """A new version of the pipeline named by `config`, unless it equals the latest.

    Returns the version and whether it was created. Only the latest version
    counts: publishing an older config again makes it the newest version.
    Raises UnknownPipeline or PipelineArchived.
    """
    row = _pipeline_row(conn, tenant_id, config.name, lock=True)
    if row is None:
        raise UnknownPipeline(f"unknown pipeline {config.name!r}")
    if row.archived_at is not None:
        raise PipelineArchived(f"pipeline {config.name!r} is archived")
    latest = conn.execute(
        select(pipeline_versions.c.version, pipeline_versions.c.config_hash)
        .where(pipeline_versions.c.pipeline_id == row.id)
        .order_by(pipeline_versions.c.version.desc()).limit(1)
    ).one()
    if latest.config_hash == config.config_hash():
        return find(conn, tenant_id, config.name, latest.version), False
    return _insert_version(conn, row.id, latest.version + 1, config), True


def _insert_version(conn: Connection, pipeline_id: UUID, number: int,
                    config: PipelineConfig) -> Version:
    config_id, now = new_id(), utcnow()
    conn.execute(pipeline_versions.insert().values(
        config_id=config_id, pipeline_id=pipeline_id, version=number,
        config_snapshot=config.snapshot(), config_hash=config.config_hash(), created_at=now,
    ))
    return Version(config_id, pipeline_id, config.name, number, config, now)


def _pipeline_row(conn: Connection, tenant_id: UUID, name: str,
                  lock: bool = False) -> Row[Any] | None:
    """The pipeline's row; `lock` holds it until commit (PostgreSQL: SELECT … FOR UPDATE;
    SQLite has one writer at a time, so the clause is left out there)."""
    query: Select[Any] = select(pipelines.c.id, pipelines.c.archived_at).where(
        pipelines.c.tenant_id == tenant_id, pipelines.c.name == name)
    return conn.execute(query.with_for_update() if lock else query).first()


def _ensure_pipeline(conn: Connection, tenant_id: UUID, name: str) -> None:
    """Create the pipeline row unless it exists; a concurrent creator's row wins."""
    insert_ignoring_conflicts(conn, pipelines, [{
        "id": new_id(), "tenant_id": tenant_id, "name": name, "created_at": utcnow(),
    }], "tenant_id", "name")


def _version_query() -> Select[Any]:
    return select(
        pipeline_versions.c.config_id, pipeline_versions.c.pipeline_id,
        pipelines.c.name, pipeline_versions.c.version, pipeline_versions.c.config_snapshot,
        pipeline_versions.c.created_at,
    ).join(pipelines, pipelines.c.id == pipeline_versions.c.pipeline_id)


def _to_version(row: Row[Any]) -> Version:
    return Version(row.config_id, row.pipeline_id, row.name, row.version,
                   PipelineConfig.model_validate(row.config_snapshot), row.created_at)


def find(conn: Connection, tenant_id: UUID, name: str, version: int | None = None) -> Version:
    """A version by pipeline name: the given number or the latest."""
    return by_config_id(conn, tenant_id, find_config_id(conn, tenant_id, name, version))


def find_config_id(conn: Connection, tenant_id: UUID, name: str,
                   version: int | None = None) -> UUID:
    """The config id of a version by pipeline name (the latest without a number),
    without reading the snapshot: callers cache versions by config id."""
    return find_startable(conn, tenant_id, name, version)[0]


def _startable_query(numbered: bool) -> Any:
    query = (select(pipeline_versions.c.config_id, pipelines.c.archived_at)
             .join(pipelines, pipelines.c.id == pipeline_versions.c.pipeline_id)
             .where(pipelines.c.tenant_id == bindparam("p_tenant"),
                    pipelines.c.name == bindparam("p_name")))
    if numbered:
        return query.where(pipeline_versions.c.version == bindparam("p_version"))
    return query.order_by(pipeline_versions.c.version.desc()).limit(1)


# Built once: starting an execution looks its version up on every request.
_STARTABLE = {numbered: _startable_query(numbered) for numbered in (False, True)}


def find_startable(conn: Connection, tenant_id: UUID, name: str,
                   version: int | None = None) -> tuple[UUID, bool]:
    """A version's config id by pipeline name, and whether its pipeline is archived."""
    row = conn.execute(_STARTABLE[version is not None], {
        "p_tenant": tenant_id, "p_name": name, "p_version": version}).first()
    if row is None:
        suffix = f" version {version}" if version is not None else ""
        raise UnknownPipeline(f"unknown pipeline {name!r}{suffix}")
    return UUID(str(row.config_id)), row.archived_at is not None


def by_config_id(conn: Connection, tenant_id: UUID, config_id: UUID) -> Version:
    row = conn.execute(
        _version_query().where(pipelines.c.tenant_id == tenant_id,
                               pipeline_versions.c.config_id == config_id)
    ).first()
    if row is None:
        raise UnknownPipeline(f"unknown config_id {config_id}")
    return _to_version(row)


def config_of(conn: Connection, config_id: UUID) -> PipelineConfig:
    """The snapshot an execution runs on (workers see every tenant)."""
    snapshot = conn.execute(
        select(pipeline_versions.c.config_snapshot)
        .where(pipeline_versions.c.config_id == config_id)
    ).scalar_one()
    return PipelineConfig.model_validate(snapshot)


def is_archived(conn: Connection, pipeline_id: UUID) -> bool:
    """Whether the pipeline is archived, and so may not start new executions."""
    archived_at = conn.execute(
        select(pipelines.c.archived_at).where(pipelines.c.id == pipeline_id)
    ).scalar()
    return archived_at is not None


def archive(conn: Connection, tenant_id: UUID, name: str) -> PipelineInfo:
    """Archive a pipeline; archiving it again changes nothing.

    Executions already started finish on their version.
    """
    conn.execute(
        update(pipelines)
        .where(pipelines.c.tenant_id == tenant_id, pipelines.c.name == name,
               pipelines.c.archived_at.is_(None))
        .values(archived_at=utcnow())
    )
    return get_info(conn, tenant_id, name)


def get_info(conn: Connection, tenant_id: UUID, name: str) -> PipelineInfo:
    """A pipeline by name, archived or not, with its latest version."""
    row = conn.execute(
        _info_query().where(pipelines.c.tenant_id == tenant_id, pipelines.c.name == name)
    ).first()
    if row is None:
        raise UnknownPipeline(f"unknown pipeline {name!r}")
    return _to_info(row)


def list_page(conn: Connection, tenant_id: UUID, *, include_archived: bool, limit: int,
              cursor: tuple[datetime, UUID] | None) -> list[PipelineInfo]:
    """Newest first; the cursor is the (created_at, id) of the last pipeline seen."""
    query = _info_query().where(pipelines.c.tenant_id == tenant_id)
    if not include_archived:
        query = query.where(pipelines.c.archived_at.is_(None))
    if cursor is not None:
        created, last_id = cursor
        query = query.where(or_(pipelines.c.created_at < created,
                                and_(pipelines.c.created_at == created,
                                     pipelines.c.id < last_id)))
    query = query.order_by(pipelines.c.created_at.desc(), pipelines.c.id.desc()).limit(limit)
    return [_to_info(row) for row in conn.execute(query)]


def versions_page(conn: Connection, tenant_id: UUID, name: str, *, limit: int,
                  before: int | None) -> list[VersionInfo]:
    """A pipeline's versions, newest first, numbered below `before` when given."""
    row = _pipeline_row(conn, tenant_id, name)
    if row is None:
        raise UnknownPipeline(f"unknown pipeline {name!r}")
    query = select(pipeline_versions.c.config_id, pipeline_versions.c.version,
                   pipeline_versions.c.created_at).where(pipeline_versions.c.pipeline_id == row.id)
    if before is not None:
        query = query.where(pipeline_versions.c.version < before)
    query = query.order_by(pipeline_versions.c.version.desc()).limit(limit)
    return [VersionInfo(r.config_id, name, r.version, r.created_at) for r in conn.execute(query)]


def _info_query() -> Select[Any]:
    latest_number = (
        select(func.max(pipeline_versions.c.version))
        .where(pipeline_versions.c.pipeline_id == pipelines.c.id)
        .correlate(pipelines).scalar_subquery()
    )
    return select(
        pipelines.c.id, pipelines.c.name, pipelines.c.created_at, pipelines.c.archived_at,
        pipeline_versions.c.version, pipeline_versions.c.config_id,
        pipeline_versions.c.created_at.label("updated_at"),
    ).join(pipeline_versions, and_(pipeline_versions.c.pipeline_id == pipelines.c.id,
                                   pipeline_versions.c.version == latest_number))


def _to_info(row: Row[Any]) -> PipelineInfo:
    return PipelineInfo(row.id, row.name, row.created_at, row.archived_at, row.version,
                        row.config_id, row.updated_at)
