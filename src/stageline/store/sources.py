"""Sources: named input channels of a tenant, each bound to one pipeline.

An execution started through a source records the source's key
(`executions.source_key`), which is how seed 001's routes find it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, Select, select
from sqlalchemy.exc import IntegrityError

from stageline.storage.blobs import BlobStore
from stageline.store import executions
from stageline.store import pipelines as pipeline_store
from stageline.store.executions import NewExecution, UnknownExecution
from stageline.store.ids import new_id
from stageline.store.records import ExecutionRecord
from stageline.store.tables import pipelines, sources
from stageline.store.types import utcnow


class UnknownSource(LookupError):
    pass


class SourceExists(Exception):
    pass


@dataclass(frozen=True)
class SourceRecord:
    id: UUID
    tenant_id: UUID
    key: str
    pipeline_id: UUID
    pipeline: str  # the pipeline's name
    created_at: datetime


def create(conn: Connection, tenant_id: UUID, key: str, pipeline: str) -> SourceRecord:
    """A new source bound to the tenant's pipeline named `pipeline`.

    Raises UnknownPipeline for a pipeline the tenant does not have, and
    SourceExists when the tenant already has a source with this key.
    """
    version = pipeline_store.find(conn, tenant_id, pipeline)
    if _find(conn, tenant_id, key) is not None:
        raise SourceExists(f"source {key!r} already exists")
    source_id, now = new_id(), utcnow()
    try:
        conn.execute(sources.insert().values(id=source_id, tenant_id=tenant_id, key=key,
                                             pipeline_id=version.pipeline_id, created_at=now))
    except IntegrityError as exc:  # created concurrently since the check above
        raise SourceExists(f"source {key!r} already exists") from exc
    return SourceRecord(source_id, tenant_id, key, version.pipeline_id, version.pipeline, now)


def get(conn: Connection, tenant_id: UUID, key: str) -> SourceRecord:
    found = _find(conn, tenant_id, key)
    if found is None:
        raise UnknownSource(f"source {key!r} not found")
    return found


def list_page(conn: Connection, tenant_id: UUID, after: str | None,
              limit: int) -> list[SourceRecord]:
    """The tenant's sources in key order, from after the key `after`."""
    query = _query().where(sources.c.tenant_id == tenant_id)
    if after is not None:
        query = query.where(sources.c.key > after)
    rows = conn.execute(query.order_by(sources.c.key).limit(limit))
    return [_to_record(r) for r in rows]


def start_execution(conn: Connection, tenant_id: UUID, source: SourceRecord, payload: Any,
                    blobs: BlobStore, inline_limit: int) -> ExecutionRecord:
    """Start the latest version of the source's pipeline on `payload`."""
    version = pipeline_store.find(conn, tenant_id, source.pipeline)
    record, _ = executions.create(conn, tenant_id,
                                  NewExecution(version, payload, source_key=source.key),
                                  blobs, inline_limit)
    return record


def execution_of(conn: Connection, tenant_id: UUID, source: SourceRecord,
                 id_or_tag: str) -> ExecutionRecord:
    """An execution started through `source`; any other answers UnknownExecution."""
    record = executions.resolve(conn, tenant_id, id_or_tag)
    if record.source_key != source.key:
        raise UnknownExecution(f"execution {id_or_tag!r} not found in source {source.key!r}")
    return record


def _find(conn: Connection, tenant_id: UUID, key: str) -> SourceRecord | None:
    row = conn.execute(_query().where(sources.c.tenant_id == tenant_id,
                                      sources.c.key == key)).first()
    return None if row is None else _to_record(row)


def _query() -> Select[Any]:
    return select(sources.c.id, sources.c.tenant_id, sources.c.key, sources.c.pipeline_id,
                  pipelines.c.name, sources.c.created_at).join(
        pipelines, pipelines.c.id == sources.c.pipeline_id)


def _to_record(row: Row[Any]) -> SourceRecord:
    return SourceRecord(row.id, row.tenant_id, row.key, row.pipeline_id, row.name,
                        row.created_at)
