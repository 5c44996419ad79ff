"""Starting executions and reading them back."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, bindparam, or_, select

from stageline.domain.config import PipelineConfig
from stageline.domain.graph import ENTRY_STAGE
from stageline.domain.items import ENTRY_KEY, encode
from stageline.domain.status import ExecutionStatus, MessageStatus, StageStatus, StepStatus
from stageline.storage.blobs import BlobStore
from stageline.store.bulk import Bulk
from stageline.store.dialect import notify_work
from stageline.store.ids import new_id
from stageline.store.items import NewItem, insert_items, item_rows, offload
from stageline.store.pipelines import Version
from stageline.store.records import ExecutionRecord, StepRunRecord
from stageline.store.tables import executions, lineage_entries, messages, step_runs
from stageline.store.types import utcnow


class TagInUse(Exception):
    pass


class UnknownExecution(LookupError):
    pass


@dataclass(frozen=True)
class NewExecution:
    version: Version
    payload: Any
    tag: str | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    source_key: str | None = None
    run_timeout_seconds: int | None = None
    skip_cache: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # seed 004's optional labels


@dataclass(frozen=True)
class PreparedExecution:
    """Every row of a new execution, built before its transaction: SQLite has
    one writer, and what is built beforehand is not built while holding it."""

    new: NewExecution
    tenant_id: UUID
    values: dict[str, Any]  # the execution's row
    steps: list[dict[str, Any]]
    items: list[dict[str, Any]]
    lineage: list[dict[str, Any]]
    messages: list[dict[str, Any]]


def prepare(tenant_id: UUID, new: NewExecution, blobs: BlobStore,
            inline_limit: int) -> PreparedExecution:
    """The rows of a new execution; a large input is written to storage now
    (content-named: a start refused later leaves an unused file, never a wrong one)."""
    execution_id, now = new_id(), utcnow()
    config = new.version.config
    first = config.steps[0]
    values: dict[str, Any] = dict(
        id=execution_id, tenant_id=tenant_id, pipeline_id=new.version.pipeline_id,
        config_id=new.version.config_id, status=ExecutionStatus.PENDING, tag=new.tag,
        idempotency_key=new.idempotency_key, payload=new.payload, meta=new.metadata,
        root_execution_id=execution_id, source_key=new.source_key, queue_name=first.queue,
        concurrency_key=first.concurrency_key, run_timeout_seconds=new.run_timeout_seconds,
        retry_count=0, skip_cache=new.skip_cache, created_at=now, updated_at=now, **new.extra,
    )
    # The entry stage's one item, and the lineage root that every item descends from.
    correlation_id = str(new_id())
    item = NewItem(ENTRY_STAGE, ENTRY_KEY, correlation_id, encode(new.payload))
    items = item_rows(execution_id, [item], offload(execution_id, [item], blobs, inline_limit))
    root = dict(
        id=new_id(), tenant_id=tenant_id, correlation_id=correlation_id,
        parent_correlation_id=None, replay_batch_id=None, execution_id=execution_id,
        route_id=None, adapter_name=None, adapter_index=None, stage_name=ENTRY_STAGE,
        stage_status=StageStatus.INITIATED, stage_input_hash=item.encoded.content_hash,
        item_key=ENTRY_KEY, attempt=1, started_at=now, completed_at=now, duration_ms=0.0,
        meta=None, error_info=None,
    )
    entry_messages = [
        message_row(execution_id, index, step.name, step.queue, step.priority, ENTRY_KEY,
                    execution_id, correlation_id, None, now)
        for index, step in enumerate(config.steps) if step.input == ENTRY_STAGE
    ]
    return PreparedExecution(new, tenant_id, _full_row(values),
                             initial_step_rows(execution_id, config), items, [root],
                             entry_messages)


def insert(conn: Connection, prepared: PreparedExecution) -> tuple[ExecutionRecord, bool]:
    """Start a prepared execution: its row, its steps, its input item and first messages.

    Returns the execution and whether it was created (False: the same
    idempotency key had already started it).
    """
    new, tenant_id = prepared.new, prepared.tenant_id
    if new.idempotency_key:
        found = _by_idempotency_key(conn, tenant_id, new.idempotency_key)
        if found is not None:
            return found, False
    if new.tag and tag_taken(conn, tenant_id, new.tag):
        raise TagInUse(f"tag {new.tag!r} is already used by another execution")
    INSERT_EXECUTION.execute(conn, [prepared.values])
    INSERT_STEPS.execute(conn, prepared.steps)
    insert_items(conn, prepared.items)
    INSERT_LINEAGE.execute(conn, prepared.lineage)
    INSERT_MESSAGES.execute(conn, prepared.messages)
    notify_work(conn)
    record: dict[str, Any] = {f.name: prepared.values.get(f.name)
                              for f in fields(ExecutionRecord)}
    return ExecutionRecord(**record), True


def create(conn: Connection, tenant_id: UUID, new: NewExecution, blobs: BlobStore,
           inline_limit: int) -> tuple[ExecutionRecord, bool]:
    """`prepare` and `insert` in one go, inside the caller's transaction."""
    return insert(conn, prepare(tenant_id, new, blobs, inline_limit))


def _full_row(values: dict[str, Any]) -> dict[str, Any]:
    """Every column named, so each start compiles to the same cached statement."""
    return {c.name: values.get(c.name) for c in executions.columns}


def initial_step_rows(execution_id: UUID, config: PipelineConfig) -> list[dict[str, Any]]:
    """A new execution's steps: those reading the entry stage have its message waiting."""
    rows = step_rows(execution_id, config)
    for row, step in zip(rows, config.steps, strict=True):
        row["outstanding"] = int(step.input == ENTRY_STAGE)
    return rows


def initial_steps(execution_id: UUID, config: PipelineConfig) -> list[StepRunRecord]:
    """What `create` wrote for the steps, without reading it back."""
    names = [f.name for f in fields(StepRunRecord)]
    records = []
    for row in initial_step_rows(execution_id, config):
        values: dict[str, Any] = {name: row.get(name) for name in names}
        records.append(StepRunRecord(**values))
    return records


STEP_COLUMNS = ["execution_id", "step_index", "step_type", "input_stage", "output_stage",
                "status", "outstanding", "completed", "failed", "attempts", "handler_seconds",
                "started_at", "finished_at", "source_step_type", "source_execution_id",
                "checkpoint_id"]
INSERT_EXECUTION = Bulk(executions.insert(), [c.name for c in executions.columns])
INSERT_STEPS = Bulk(step_runs.insert(), STEP_COLUMNS)  # rows as step_rows makes them
INSERT_LINEAGE = Bulk(lineage_entries.insert(), [c.name for c in lineage_entries.columns])
INSERT_MESSAGES = Bulk(messages.insert(), [c.name for c in messages.columns])


def step_rows(execution_id: UUID, config: PipelineConfig) -> list[dict[str, Any]]:
    return [
        {"execution_id": execution_id, "step_index": i, "step_type": s.name,
         "input_stage": s.input, "output_stage": s.output, "status": StepStatus.PENDING,
         "outstanding": 0, "completed": 0, "failed": 0, "attempts": 0, "handler_seconds": 0.0,
         "started_at": None, "finished_at": None, "source_step_type": None,
         "source_execution_id": None, "checkpoint_id": None}
        for i, s in enumerate(config.steps)
    ]


def message_row(execution_id: UUID, step_index: int, route: str, queue: str, priority: int,
                item_key: str | None, input_execution_id: UUID,
                parent_correlation_id: str | None, replay_batch_id: str | None,
                now: datetime, status: MessageStatus = MessageStatus.QUEUED) -> dict[str, Any]:
    return {
        "id": new_id(), "execution_id": execution_id, "step_index": step_index, "route": route,
        "status": status, "item_key": item_key, "input_execution_id": input_execution_id,
        "parent_correlation_id": parent_correlation_id, "replay_batch_id": replay_batch_id,
        "queue": queue, "priority": priority, "attempt": 0, "available_at": now,
        "created_at": now, "lease_owner": None, "lease_token": None, "lease_expires_at": None,
        "lineage_id": None,
    }


def _by_idempotency_key(conn: Connection, tenant_id: UUID, key: str) -> ExecutionRecord | None:
    row = conn.execute(select(executions).where(executions.c.tenant_id == tenant_id,
                                                executions.c.idempotency_key == key)).first()
    return None if row is None else ExecutionRecord.from_row(row)


def tag_taken(conn: Connection, tenant_id: UUID, tag: str) -> bool:
    return conn.execute(select(executions.c.id).where(
        executions.c.tenant_id == tenant_id, executions.c.tag == tag)).first() is not None


_GET = select(executions).where(executions.c.tenant_id == bindparam("g_tenant"),
                                executions.c.id == bindparam("g_id"))
_STEPS_OF = (select(step_runs).where(step_runs.c.execution_id == bindparam("g_id"))
             .order_by(step_runs.c.step_index))


def get(conn: Connection, tenant_id: UUID, execution_id: UUID) -> ExecutionRecord:
    row = conn.execute(_GET, {"g_tenant": tenant_id, "g_id": execution_id}).first()
    if row is None:
        raise UnknownExecution(f"execution {execution_id} not found")
    return ExecutionRecord.from_row(row)


def resolve(conn: Connection, tenant_id: UUID, id_or_tag: str) -> ExecutionRecord:
    """Wherever an execution id is accepted, a tag is accepted too."""
    try:
        return get(conn, tenant_id, UUID(id_or_tag))
    except ValueError:
        pass
    except UnknownExecution:
        pass
    row = conn.execute(select(executions).where(executions.c.tenant_id == tenant_id,
                                                executions.c.tag == id_or_tag)).first()
    if row is None:
        raise UnknownExecution(f"execution {id_or_tag!r} not found")
    return ExecutionRecord.from_row(row)


def steps_of(conn: Connection, execution_id: UUID) -> list[StepRunRecord]:
    rows = conn.execute(_STEPS_OF, {"g_id": execution_id})
    return [StepRunRecord.from_row(r) for r in rows]


@dataclass(frozen=True)
class ExecutionFilter:
    status: list[str] | None = None
    pipeline_id: UUID | None = None
    tag: str | None = None
    parent_execution_id: UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    source_key: str | None = None
    failed_route: str | None = None  # a step of this name ended failed


def list_page(conn: Connection, tenant_id: UUID, flt: ExecutionFilter, limit: int,
              cursor: tuple[datetime, UUID] | None) -> list[ExecutionRecord]:
    """Newest first; the cursor is the (created_at, id) of the last row seen."""
    query = select(executions).where(executions.c.tenant_id == tenant_id)
    for cond in _conditions(flt):
        query = query.where(cond)
    if cursor is not None:
        created, last_id = cursor
        query = query.where(or_(executions.c.created_at < created,
                                and_(executions.c.created_at == created,
                                     executions.c.id < last_id)))
    query = query.order_by(executions.c.created_at.desc(), executions.c.id.desc()).limit(limit)
    return [ExecutionRecord.from_row(r) for r in conn.execute(query)]


def _conditions(flt: ExecutionFilter) -> list[Any]:
    c = executions.c
    conds: list[Any] = []
    if flt.status:
        conds.append(c.status.in_(flt.status))
    if flt.pipeline_id is not None:
        conds.append(c.pipeline_id == flt.pipeline_id)
    if flt.tag is not None:
        conds.append(c.tag == flt.tag)
    if flt.parent_execution_id is not None:
        conds.append(c.parent_execution_id == flt.parent_execution_id)
    if flt.created_after is not None:
        conds.append(c.created_at >= flt.created_after)
    if flt.created_before is not None:
        conds.append(c.created_at < flt.created_before)
    if flt.source_key is not None:
        conds.append(c.source_key == flt.source_key)
    if flt.failed_route is not None:
        conds.append(select(step_runs.c.step_index).where(
            step_runs.c.execution_id == c.id, step_runs.c.step_type == flt.failed_route,
            step_runs.c.status == StepStatus.FAILED).exists())
    return conds
