"""The work queue: claim messages under a lease, commit their outcomes.

A claim and a commit are each one transaction over a batch of messages.
The commit is fenced by the lease token: a worker whose lease was taken
over commits nothing for that message.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, bindparam, or_, select, tuple_, update

from stageline.domain.config import PipelineConfig
from stageline.domain.items import cache_key
from stageline.domain.status import ExecutionStatus, MessageStatus, StageStatus, StepStatus
from stageline.store.counters import StepDelta, StepKey, apply_deltas
from stageline.store.dialect import insert_ignoring_conflicts, notify_work, skip_locked
from stageline.store.executions import message_row
from stageline.store.ids import new_id
from stageline.store.items import (
    NewItem,
    StoredItem,
    get_items_by_address,
    insert_items,
    item_rows,
    to_item,
)
from stageline.store.progress import settle_executions
from stageline.store.stages import read_stage
from stageline.store.tables import (
    executions,
    lineage_entries,
    messages,
    stage_items,
    step_cache,
    step_runs,
)
from stageline.store.types import utcnow

ConfigLookup = Callable[[UUID], PipelineConfig]
ACTIVE = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)


@dataclass(frozen=True)
class Claimed:
    """A message leased to this worker, with its input loaded."""

    id: UUID
    execution_id: UUID
    tenant_id: UUID
    config_id: UUID
    step_index: int
    route: str
    item_key: str | None
    parent_correlation_id: str | None
    replay_batch_id: str | None
    attempt: int
    lease_token: UUID
    lineage_id: UUID
    inputs: list[StoredItem]
    input_hash: str | None
    skip_cache: bool
    worker: str
    cache_key: str | None = None  # set when the step caches by input hash
    cached: CacheHit | None = None  # an earlier run's outputs for the same input

    @property
    def correlation_id(self) -> str:
        return str(self.id)


@dataclass(frozen=True)
class CacheHit:
    execution_id: UUID
    correlation_id: str
    items: list[StoredItem]



@dataclass
class Outcome:
    """What running one claimed message produced."""

    message: Claimed
    status: MessageStatus  # COMPLETED, FAILED, or QUEUED for a retry
    outputs: list[NewItem] = field(default_factory=list)
    adapter_name: str | None = None
    adapter_index: int | None = None
    duration_ms: float = 0.0
    error_info: dict[str, Any] | None = None
    retry_delay: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)  # items already offloaded to storage


def claim(conn: Connection, worker: str, limit: int, lease_seconds: float,
          queues: list[str], configs: ConfigLookup) -> list[Claimed]:
    """Lease up to `limit` ready messages (and any whose lease expired)."""
    now = utcnow()
    rows = conn.execute(_candidates(conn, queues, limit, now)).all()
    if not rows:
        return []
    token = new_id()
    expires = now + timedelta(seconds=lease_seconds)
    leases = [{"m_id": r.id, "m_lineage": new_id()} for r in rows]
    conn.execute(
        update(messages).where(messages.c.id == bindparam("m_id")).values(
            status=MessageStatus.LEASED, lease_owner=worker, lease_token=token,
            lease_expires_at=expires, attempt=messages.c.attempt + 1,
            lineage_id=bindparam("m_lineage")),
        leases,
    )
    _expire_lost_attempts(conn, [r for r in rows if r.status == MessageStatus.LEASED], now)
    claimed = _with_cache(conn, _with_inputs(conn, rows, leases, token, configs, worker),
                          configs)
    _record_attempts(conn, claimed, configs, worker, now)
    _mark_started(conn, claimed, worker, now)
    return claimed


def _candidates(conn: Connection, queues: list[str], limit: int, now: Any) -> Any:
    m = messages.c
    ready = or_(
        and_(m.status == MessageStatus.QUEUED, m.available_at <= now),
        and_(m.status == MessageStatus.LEASED, m.lease_expires_at < now),
    )
    query = (
        select(m.id, m.status, m.lineage_id, m.execution_id, m.step_index, m.route,
               m.item_key, m.input_execution_id, m.parent_correlation_id, m.replay_batch_id,
               m.attempt, executions.c.tenant_id, executions.c.config_id,
               executions.c.skip_cache)
        .join(executions, executions.c.id == m.execution_id)
        .where(ready, m.queue.in_(queues), executions.c.status.in_(ACTIVE))
        .order_by(m.priority.desc(), m.available_at)
        .limit(limit)
    )
    if skip_locked(conn):
        query = query.with_for_update(skip_locked=True, of=messages)
    return query


def _expire_lost_attempts(conn: Connection, taken_over: list[Any], now: Any) -> None:
    """The attempts of a worker that stopped heartbeating are lost: say so in lineage."""
    if not taken_over:
        return
    conn.execute(
        update(lineage_entries).where(lineage_entries.c.id == bindparam("l_id"),
                                      lineage_entries.c.stage_status == StageStatus.PROCESSING)
        .values(stage_status=StageStatus.FAILED, completed_at=now,
                error_info={"type": "LeaseExpired",
                            "message": "the worker's lease expired before it committed"}),
        [{"l_id": r.lineage_id} for r in taken_over if r.lineage_id is not None],
    )


def _with_inputs(conn: Connection, rows: Sequence[Any], leases: list[dict[str, Any]],
                 token: UUID, configs: ConfigLookup, worker: str) -> list[Claimed]:
    wanted = [(r.input_execution_id, configs(r.config_id).steps[r.step_index].input, r.item_key)
              for r in rows if r.item_key is not None]
    found = get_items_by_address(conn, wanted)
    claimed = []
    for r, lease in zip(rows, leases, strict=True):
        stage = configs(r.config_id).steps[r.step_index].input
        if r.item_key is None:
            inputs = read_stage(conn, r.input_execution_id, stage)
        else:
            item = found.get((r.input_execution_id, stage, r.item_key))
            inputs = [item] if item else []
        claimed.append(Claimed(
            r.id, r.execution_id, r.tenant_id, r.config_id, r.step_index, r.route,
            r.item_key, r.parent_correlation_id, r.replay_batch_id, r.attempt + 1, token,
            lease["m_lineage"], inputs, _input_hash(inputs, collect=r.item_key is None),
            r.skip_cache, worker,
        ))
    return claimed


def _with_cache(conn: Connection, claimed: list[Claimed],
                configs: ConfigLookup) -> list[Claimed]:
    """Attach cache keys, and earlier outputs for the same input, to caching steps."""
    keyed: dict[UUID, str] = {}
    for c in claimed:
        step = configs(c.config_id).steps[c.step_index]
        if step.cache and c.input_hash is not None:
            keyed[c.id] = cache_key([a.model_dump(mode="json") for a in step.adapters],
                                    step.fan_out, step.collect, c.input_hash)
    if not keyed:
        return claimed
    hits = _cache_hits(conn, {(c.tenant_id, keyed[c.id]) for c in claimed
                              if c.id in keyed and not c.skip_cache})
    return [replace(c, cache_key=keyed.get(c.id), cached=hits.get((c.tenant_id,
                                                                   keyed.get(c.id, ""))))
            for c in claimed]


def _cache_hits(conn: Connection, wanted: set[tuple[UUID, str]]
                ) -> dict[tuple[UUID, str], CacheHit]:
    if not wanted:
        return {}
    found = conn.execute(select(step_cache).where(
        tuple_(step_cache.c.tenant_id, step_cache.c.cache_key).in_(list(wanted)))).all()
    hits = {}
    for row in found:
        items = conn.execute(select(stage_items).where(
            stage_items.c.execution_id == row.execution_id,
            stage_items.c.stage_name == row.stage_name,
            stage_items.c.correlation_id == row.correlation_id,
        ).order_by(stage_items.c.item_key)).all()
        hits[(row.tenant_id, row.cache_key)] = CacheHit(
            row.execution_id, row.correlation_id, [to_item(i) for i in items])
    return hits


def _input_hash(inputs: list[StoredItem], collect: bool) -> str | None:
    if not inputs:
        return None
    if not collect:
        return inputs[0].content_hash
    digest = hashlib.sha256("\n".join(i.content_hash for i in inputs).encode())
    return "sha256:" + digest.hexdigest()


def _record_attempts(conn: Connection, claimed: list[Claimed], configs: ConfigLookup,
                     worker: str, now: Any) -> None:
    rows = []
    for c in claimed:
        step = configs(c.config_id).steps[c.step_index]
        rows.append({
            "id": c.lineage_id, "tenant_id": c.tenant_id, "correlation_id": c.correlation_id,
            "parent_correlation_id": c.parent_correlation_id,
            "replay_batch_id": c.replay_batch_id, "execution_id": c.execution_id,
            "route_id": c.route, "adapter_name": step.adapters[0].name, "adapter_index": 0,
            "stage_name": step.output, "stage_status": StageStatus.PROCESSING,
            "stage_input_hash": c.input_hash, "item_key": c.item_key, "attempt": c.attempt,
            "started_at": now, "meta": {"worker": worker, "attempt": c.attempt},
        })
    conn.execute(lineage_entries.insert(), rows)


def _mark_started(conn: Connection, claimed: list[Claimed], worker: str, now: Any) -> None:
    execution_ids = sorted({c.execution_id for c in claimed}, key=str)
    conn.execute(
        update(executions).where(executions.c.id.in_(execution_ids),
                                 executions.c.status == ExecutionStatus.PENDING)
        .values(status=ExecutionStatus.RUNNING, started_at=now, updated_at=now,
                assigned_to_worker=worker)
    )
    step_keys = sorted({(c.execution_id, c.step_index) for c in claimed},
                       key=lambda k: (str(k[0]), k[1]))
    conn.execute(
        update(step_runs).where(step_runs.c.execution_id == bindparam("s_exec"),
                                step_runs.c.step_index == bindparam("s_index"),
                                step_runs.c.status == StepStatus.PENDING)
        .values(status=StepStatus.RUNNING, started_at=now),
        [{"s_exec": e, "s_index": i} for e, i in step_keys],
    )


def heartbeat(conn: Connection, message_ids: list[UUID], token: UUID,
              lease_seconds: float) -> int:
    """Extend this worker's leases; returns how many it still holds."""
    if not message_ids:
        return 0
    result = conn.execute(
        update(messages).where(messages.c.id.in_(message_ids), messages.c.lease_token == token,
                               messages.c.status == MessageStatus.LEASED)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
    )
    return result.rowcount


@dataclass
class CommitReport:
    committed: list[UUID] = field(default_factory=list)
    fenced: list[UUID] = field(default_factory=list)  # lease lost: nothing written
    finished: dict[UUID, ExecutionStatus] = field(default_factory=dict)
    new_messages: int = 0


def commit(conn: Connection, outcomes: list[Outcome], configs: ConfigLookup) -> CommitReport:
    """Record a batch of outcomes: items, lineage, follow-ups, counters, settle."""
    report = CommitReport()
    if not outcomes:
        return report
    now = utcnow()
    draining = _lock_executions(conn, {o.message.execution_id for o in outcomes}, now)
    valid = _still_leased(conn, outcomes)
    report.fenced = [o.message.id for o in outcomes if o.message.id not in valid]
    kept = [o for o in outcomes if o.message.id in valid]
    if not kept:
        return report
    for o in kept:
        if o.message.execution_id in draining and o.status == MessageStatus.QUEUED:
            o.status = MessageStatus.CANCELLED  # no retries once a cancel was asked
    _close_messages(conn, kept, now)
    _close_attempts(conn, kept, now)
    _insert_outputs(conn, kept)
    _remember(conn, kept, configs, now)
    deltas, follow_ups = _follow_ups(kept, configs, now, draining)
    if follow_ups:
        conn.execute(messages.insert(), follow_ups)
    apply_deltas(conn, deltas)
    if _count_retries(conn, kept) or follow_ups:
        notify_work(conn)
    report.committed = [o.message.id for o in kept]
    report.new_messages = len(follow_ups)
    touched = sorted({(o.message.execution_id, o.message.config_id) for o in kept},
                     key=lambda pair: str(pair[0]))
    report.finished = settle_executions(conn, [(e, configs(c)) for e, c in touched])
    return report


def _lock_executions(conn: Connection, ids: set[UUID], now: Any) -> set[UUID]:
    """Lock the batch's executions; returns those being cancelled.

    The lock serialises commits of one execution, so the last one to finish a
    step always sees the others' counters (PostgreSQL row lock; SQLite's one writer).
    """
    rows = conn.execute(update(executions).where(executions.c.id.in_(sorted(ids, key=str)))
                        .values(updated_at=now)
                        .returning(executions.c.id, executions.c.status))
    return {r.id for r in rows if r.status == ExecutionStatus.CANCELLING}


def _still_leased(conn: Connection, outcomes: list[Outcome]) -> set[UUID]:
    tokens = {o.message.id: o.message.lease_token for o in outcomes}
    query = select(messages.c.id, messages.c.lease_token).where(
        messages.c.id.in_(list(tokens)), messages.c.status == MessageStatus.LEASED)
    if skip_locked(conn):
        query = query.with_for_update()
    return {r.id for r in conn.execute(query) if r.lease_token == tokens[r.id]}


def _close_messages(conn: Connection, kept: list[Outcome], now: Any) -> None:
    conn.execute(
        update(messages).where(messages.c.id == bindparam("m_id"),
                               messages.c.lease_token == bindparam("m_token"))
        .values(status=bindparam("m_status"), available_at=bindparam("m_available"),
                lease_owner=None, lease_token=None, lease_expires_at=None),
        [{"m_id": o.message.id, "m_token": o.message.lease_token, "m_status": o.status,
          "m_available": now + timedelta(seconds=o.retry_delay)} for o in kept],
    )


def _close_attempts(conn: Connection, kept: list[Outcome], now: Any) -> None:
    conn.execute(
        update(lineage_entries).where(lineage_entries.c.id == bindparam("l_id")).values(
            stage_status=bindparam("l_status"), completed_at=now,
            duration_ms=bindparam("l_ms"), adapter_name=bindparam("l_adapter"),
            adapter_index=bindparam("l_index"), error_info=bindparam("l_error"),
            meta=bindparam("l_meta")),
        [{"l_id": o.message.lineage_id,
          "l_status": StageStatus.COMPLETED if o.status == MessageStatus.COMPLETED
          else StageStatus.FAILED,
          "l_ms": o.duration_ms, "l_adapter": o.adapter_name, "l_index": o.adapter_index,
          "l_error": o.error_info,
          "l_meta": {"worker": o.message.worker, "attempt": o.message.attempt,
                     "outputs": len(o.outputs), **o.meta}}
         for o in kept],
    )


def _insert_outputs(conn: Connection, kept: list[Outcome]) -> None:
    rows: list[dict[str, Any]] = []
    for o in kept:
        if o.status == MessageStatus.COMPLETED:
            rows += item_rows(o.message.execution_id, o.outputs, o.paths)
    insert_items(conn, rows)


def _remember(conn: Connection, kept: list[Outcome], configs: ConfigLookup, now: Any) -> None:
    """Computed (not reused) outputs of caching steps answer the same input later."""
    rows = [{"tenant_id": o.message.tenant_id, "cache_key": o.message.cache_key,
             "execution_id": o.message.execution_id,
             "stage_name": configs(o.message.config_id).steps[o.message.step_index].output,
             "correlation_id": o.message.correlation_id, "created_at": now}
            for o in kept if o.status == MessageStatus.COMPLETED
            and o.message.cache_key is not None and o.message.cached is None]
    insert_ignoring_conflicts(conn, step_cache, rows, "tenant_id", "cache_key")


def _follow_ups(kept: list[Outcome], configs: ConfigLookup, now: Any,
                draining: set[UUID]) -> tuple[dict[StepKey, StepDelta], list[dict[str, Any]]]:
    """Counter changes and the next steps' messages; none for a draining execution."""
    deltas: dict[StepKey, StepDelta] = defaultdict(StepDelta)
    rows: list[dict[str, Any]] = []
    for o in kept:
        m = o.message
        delta = deltas[(m.execution_id, m.step_index)]
        delta.attempts += 1
        delta.handler_seconds += o.duration_ms / 1000
        if o.status == MessageStatus.QUEUED:
            continue
        delta.outstanding -= 1
        if o.status == MessageStatus.FAILED:
            delta.failed += 1
        if o.status != MessageStatus.COMPLETED:
            continue
        delta.completed += 1
        if m.execution_id in draining:
            continue
        config = configs(m.config_id)
        producer = config.steps[m.step_index]
        status = MessageStatus.HELD if producer.review else MessageStatus.QUEUED
        for index, step in enumerate(config.steps):
            if step.input != producer.output or step.collect:
                continue
            for item in o.outputs:
                rows.append(message_row(m.execution_id, index, step.name, step.queue,
                                        step.priority, item.key, m.execution_id,
                                        m.correlation_id, m.replay_batch_id, now, status))
                deltas[(m.execution_id, index)].outstanding += 1
    return deltas, rows


def _count_retries(conn: Connection, kept: list[Outcome]) -> int:
    retries: dict[UUID, int] = defaultdict(int)
    for o in kept:
        if o.status == MessageStatus.QUEUED:
            retries[o.message.execution_id] += 1
    if retries:
        conn.execute(
            update(executions).where(executions.c.id == bindparam("e_id"))
            .values(retry_count=executions.c.retry_count + bindparam("e_n")),
            [{"e_id": e, "e_n": n} for e, n in retries.items()],
        )
    return sum(retries.values())
