"""Pipelines and their immutable versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, Select, func, select

from stageline.domain.config import PipelineConfig
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


class UnknownPipeline(LookupError):
    pass


def register(conn: Connection, tenant_id: UUID, config: PipelineConfig) -> Version:
    """The version for this exact config, creating one only if it changed."""
    pipeline_id = _ensure_pipeline(conn, tenant_id, config.name)
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
    config_id, now = new_id(), utcnow()
    conn.execute(pipeline_versions.insert().values(
        config_id=config_id, pipeline_id=pipeline_id, version=number,
        config_snapshot=config.snapshot(), config_hash=digest, created_at=now,
    ))
    return Version(config_id, pipeline_id, config.name, number, config, now)


def _ensure_pipeline(conn: Connection, tenant_id: UUID, name: str) -> UUID:
    found = conn.execute(
        select(pipelines.c.id).where(pipelines.c.tenant_id == tenant_id, pipelines.c.name == name)
    ).scalar()
    if found is not None:
        return UUID(str(found))
    pipeline_id = new_id()
    conn.execute(pipelines.insert().values(id=pipeline_id, tenant_id=tenant_id, name=name,
                                           created_at=utcnow()))
    return pipeline_id


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
    query = _version_query().where(pipelines.c.tenant_id == tenant_id, pipelines.c.name == name)
    query = (query.where(pipeline_versions.c.version == version) if version is not None
             else query.order_by(pipeline_versions.c.version.desc()).limit(1))
    row = conn.execute(query).first()
    if row is None:
        suffix = f" version {version}" if version is not None else ""
        raise UnknownPipeline(f"unknown pipeline {name!r}{suffix}")
    return _to_version(row)


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
