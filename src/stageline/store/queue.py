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

from sqlalchemy import Connection, and_, bindparam, select, tuple_, update

from stageline.domain.config import PipelineConfig
from stageline.domain.items import cache_key
from stageline.domain.status import ExecutionStatus, MessageStatus, StageStatus, StepStatus
from stageline.store.bulk import Bulk
from stageline.store.counters import StepDelta, StepKey, apply_deltas
from stageline.store.dialect import insert_ignoring_conflicts, notify_work, skip_locked
from stageline.store.executions import INSERT_LINEAGE, INSERT_MESSAGES, message_row
from stageline.store.ids import new_id
from stageline.store.items import (
    NewItem,
    StoredItem,
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
# A fan-out's outputs and messages go to the database this many rows at a time:
# the rows of a 100,000-item fan-out, all built at once, would take 300 MB.
ROWS_PER_STATEMENT = 1000
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


@dataclass(frozen=True)
class Carry:
    """Claiming inside a commit: the next batch is leased in the same transaction.

    The messages a commit creates for this worker's queues are leased to it as
    they are written (their input is the output just produced, already in
    hand), then the batch is topped up with other ready messages. One
    transaction per batch instead of two, and no round trip between the steps
    of a chain.
    """

    worker: str
    queues: list[str]
    limit: int
    lease_seconds: float
    expired: bool = True  # also take over expired leases when topping up
    top_up: bool = True  # look for other ready work even when the chains carried some


def claim(conn: Connection, worker: str, limit: int, lease_seconds: float,
          queues: list[str], configs: ConfigLookup, *, expired: bool = True) -> list[Claimed]:
    """Lease up to `limit` ready messages, and, unless `expired` is False, any
    whose lease expired."""
    now = utcnow()
    rows = _candidates(conn, queues, limit, now, expired)
    if not rows:
        return []
    token = new_id()
    expires = now + timedelta(seconds=lease_seconds)
    leases = [{"m_id": r.id, "m_lineage": new_id(), "m_owner": worker, "m_token": token,
               "m_expires": expires} for r in rows]
    _LEASE.execute(conn, leases)
    _expire_lost_attempts(conn, [r for r in rows if r.status == MessageStatus.LEASED], now)
    claimed = _with_cache(conn, _with_inputs(conn, rows, leases, token, configs, worker),
                          configs)
    _record_attempts(conn, claimed, configs, worker, now)
    _mark_started(conn, claimed, worker, now)
    return claimed


_CANDIDATE_COLUMNS = (
    messages.c.id, messages.c.status, messages.c.lineage_id, messages.c.execution_id,
    messages.c.step_index, messages.c.route, messages.c.item_key,
    messages.c.input_execution_id, messages.c.parent_correlation_id,
    messages.c.replay_batch_id, messages.c.attempt, executions.c.tenant_id,
    executions.c.config_id, executions.c.skip_cache,
)


# A message's input item comes with it: the stage its step reads (as the
# execution's steps record it), in the execution holding the item (the parent,
# for what a replay publishes). None for a collect message or a missing item.
_INPUT_COLUMNS = tuple(c.label(f"i_{c.name}") for c in stage_items.c if c.name != "id")


def _candidate_queries(skip: bool) -> tuple[Any, Any]:
    """Expired leases first (oldest work), then ready messages in priority order:
    each a plain range of its own index, so a claim reads `limit` rows, not the
    whole queue."""
    m = messages.c
    base = (select(*_CANDIDATE_COLUMNS, *_INPUT_COLUMNS)
            .join(executions, executions.c.id == m.execution_id)
            .join(step_runs, and_(step_runs.c.execution_id == m.execution_id,
                                  step_runs.c.step_index == m.step_index))
            .outerjoin(stage_items, and_(stage_items.c.execution_id == m.input_execution_id,
                                         stage_items.c.stage_name == step_runs.c.input_stage,
                                         stage_items.c.item_key == m.item_key))
            .where(executions.c.status.in_(ACTIVE))
            .limit(bindparam("limit")))
    in_queues = m.queue.in_(bindparam("queues", expanding=True))
    expired = base.where(m.status == MessageStatus.LEASED, in_queues,
                         m.lease_expires_at < bindparam("now")).order_by(m.lease_expires_at)
    ready = base.where(m.status == MessageStatus.QUEUED, in_queues,
                       m.available_at <= bindparam("now")
                       ).order_by(m.priority.desc(), m.available_at)
    if skip:
        expired = expired.with_for_update(skip_locked=True, of=messages)
        ready = ready.with_for_update(skip_locked=True, of=messages)
    return expired, ready


# Built once: the hot path reuses compiled statements instead of rebuilding them.
_CANDIDATES = {skip: _candidate_queries(skip) for skip in (False, True)}


def _candidates(conn: Connection, queues: list[str], limit: int, now: Any,
                with_expired: bool) -> list[Any]:
    expired, ready = _CANDIDATES[skip_locked(conn)]
    rows = list(conn.execute(expired, {"now": now, "limit": limit, "queues": queues})
                ) if with_expired else []
    if len(rows) < limit:
        rows += conn.execute(ready, {"now": now, "limit": limit - len(rows),
                                     "queues": queues})
    return rows


_LEASE = Bulk(
    update(messages).where(messages.c.id == bindparam("m_id")).values(
        status=MessageStatus.LEASED, lease_owner=bindparam("m_owner"),
        lease_token=bindparam("m_token"), lease_expires_at=bindparam("m_expires"),
        attempt=messages.c.attempt + 1, lineage_id=bindparam("m_lineage"))
)
_EXPIRE_ATTEMPT = (
    update(lineage_entries).where(lineage_entries.c.id == bindparam("l_id"),
                                  lineage_entries.c.stage_status == StageStatus.PROCESSING)
    .values(stage_status=StageStatus.FAILED, completed_at=bindparam("l_now"),
            error_info={"type": "LeaseExpired",
                        "message": "the worker's lease expired before it committed"})
)


def _expire_lost_attempts(conn: Connection, taken_over: list[Any], now: Any) -> None:
    """The attempts of a worker that stopped heartbeating are lost: say so in lineage."""
    rows = [{"l_id": r.lineage_id, "l_now": now} for r in taken_over
            if r.lineage_id is not None]
    if rows:
        conn.execute(_EXPIRE_ATTEMPT, rows)


def _with_inputs(conn: Connection, rows: Sequence[Any], leases: list[dict[str, Any]],
                 token: UUID, configs: ConfigLookup, worker: str) -> list[Claimed]:
    claimed = []
    for r, lease in zip(rows, leases, strict=True):
        if r.item_key is None:
            stage = configs(r.config_id).steps[r.step_index].input
            inputs = read_stage(conn, r.input_execution_id, stage)
        elif r.i_item_key is None:
            inputs = []  # the step fails the message: its input is missing
        else:
            inputs = [StoredItem(
                r.i_execution_id, r.i_stage_name, r.i_item_key, r.i_correlation_id,
                r.i_content_type, r.i_size, r.i_content_hash, r.i_data, r.i_storage_path,
                r.i_created_at)]
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
            "started_at": now, "completed_at": None, "duration_ms": None,
            "meta": {"worker": worker, "attempt": c.attempt}, "error_info": None,
        })
    INSERT_LINEAGE.execute(conn, rows)


_START_EXECUTIONS = (
    update(executions).where(executions.c.id.in_(bindparam("e_ids", expanding=True)),
                             executions.c.status == ExecutionStatus.PENDING)
    .values(status=ExecutionStatus.RUNNING, started_at=bindparam("e_now"),
            updated_at=bindparam("e_now"), assigned_to_worker=bindparam("e_worker"))
)
_START_STEPS = Bulk(
    update(step_runs).where(step_runs.c.execution_id == bindparam("s_exec"),
                            step_runs.c.step_index == bindparam("s_index"),
                            step_runs.c.status == StepStatus.PENDING)
    .values(status=StepStatus.RUNNING, started_at=bindparam("s_now"))
)


def _mark_started(conn: Connection, claimed: list[Claimed], worker: str, now: Any) -> None:
    """Pending executions and steps of the batch are running now (a no-op for
    the steps already running, which most batches only touch)."""
    execution_ids = sorted({c.execution_id for c in claimed}, key=str)
    conn.execute(_START_EXECUTIONS, {"e_ids": execution_ids, "e_now": now,
                                     "e_worker": worker})
    step_keys = sorted({(c.execution_id, c.step_index) for c in claimed},
                       key=lambda k: (str(k[0]), k[1]))
    _START_STEPS.execute(conn, [{"s_exec": e, "s_index": i, "s_now": now}
                                for e, i in step_keys])


_HEARTBEAT = (
    update(messages).where(messages.c.id.in_(bindparam("h_ids", expanding=True)),
                           messages.c.lease_token == bindparam("h_token"),
                           messages.c.status == MessageStatus.LEASED)
    .values(lease_expires_at=bindparam("h_expires"))
)


def heartbeat(conn: Connection, message_ids: list[UUID], token: UUID,
              lease_seconds: float) -> int:
    """Extend this worker's leases; returns how many it still holds."""
    if not message_ids:
        return 0
    result = conn.execute(_HEARTBEAT, {
        "h_ids": message_ids, "h_token": token,
        "h_expires": utcnow() + timedelta(seconds=lease_seconds)})
    return result.rowcount


@dataclass
class CommitReport:
    committed: list[UUID] = field(default_factory=list)
    fenced: list[UUID] = field(default_factory=list)  # lease lost: nothing written
    finished: dict[UUID, ExecutionStatus] = field(default_factory=dict)
    new_messages: int = 0
    next_batch: list[Claimed] = field(default_factory=list)  # leased here, with a Carry


def commit(conn: Connection, outcomes: list[Outcome], configs: ConfigLookup,
           carry: Carry | None = None) -> CommitReport:
    """Record a batch of outcomes: items, lineage, follow-ups, counters, settle.

    With a `carry`, also lease the worker's next batch in the same transaction.
    """
    report = CommitReport()
    now = utcnow()
    kept: list[Outcome] = []
    if outcomes:
        draining, statuses = _lock_executions(conn, {o.message.execution_id
                                                     for o in outcomes}, now)
        for o in outcomes:
            if o.message.execution_id in draining and o.status == MessageStatus.QUEUED:
                o.status = MessageStatus.CANCELLED  # no retries once a cancel was asked
        kept = _close_messages(conn, outcomes, now)
        kept_ids = {o.message.id for o in kept}
        report.fenced = [o.message.id for o in outcomes if o.message.id not in kept_ids]
    if kept:
        _close_attempts(conn, kept, now)
        _insert_outputs(conn, kept)
        _remember(conn, kept, configs, now)
        carried = _Carried(carry, now) if carry is not None else None
        deltas, created = _follow_ups(conn, kept, configs, now, draining, carried)
        apply_deltas(conn, deltas)
        if _count_retries(conn, kept) or created > (len(carried.claimed) if carried else 0):
            notify_work(conn)  # work for other workers
        report.committed = [o.message.id for o in kept]
        report.new_messages = created
        touched = sorted({(o.message.execution_id, o.message.config_id) for o in kept},
                         key=lambda pair: str(pair[0]))
        report.finished = settle_executions(conn, [(e, configs(c)) for e, c in touched],
                                            statuses)
        if carried is not None and carried.claimed:
            report.next_batch = _with_cache(conn, carried.claimed, configs)
            # (their executions are running; their steps started with the counters)
            _record_attempts(conn, report.next_batch, configs, carried.carry.worker, now)
    # Top up a small carried batch with other ready work when there may be some
    # (a large one goes first, and its chains' own next steps come back
    # carried). Without a hint of new work the worker looks in a transaction
    # of its own, after this one has committed and announced its endings.
    if carry is not None and carry.top_up and len(report.next_batch) <= carry.limit // 2:
        report.next_batch += claim(conn, carry.worker, carry.limit - len(report.next_batch),
                                   carry.lease_seconds, carry.queues, configs,
                                   expired=carry.expired)
    return report


_LOCK_EXECUTIONS = (
    update(executions).where(executions.c.id.in_(bindparam("x_ids", expanding=True)))
    .values(updated_at=bindparam("x_now"))
    .returning(executions.c.id, executions.c.status)
)


def _lock_executions(conn: Connection, ids: set[UUID], now: Any
                     ) -> tuple[set[UUID], dict[UUID, ExecutionStatus]]:
    """Lock the batch's executions; returns those being cancelled, and every status.

    The lock serialises commits of one execution, so the last one to finish a
    step always sees the others' counters (PostgreSQL row lock; SQLite's one writer).
    """
    rows = conn.execute(_LOCK_EXECUTIONS, {"x_ids": sorted(ids, key=str), "x_now": now})
    statuses = {r.id: ExecutionStatus(r.status) for r in rows}
    return {i for i, s in statuses.items() if s == ExecutionStatus.CANCELLING}, statuses


_CLOSE_MESSAGES = (
    update(messages).where(messages.c.id.in_(bindparam("m_ids", expanding=True)),
                           messages.c.lease_token == bindparam("m_token"),
                           messages.c.status == MessageStatus.LEASED)
    .values(status=bindparam("m_status"), available_at=bindparam("m_available"),
            lease_owner=None, lease_token=None, lease_expires_at=None)
    .returning(messages.c.id)
)


def _close_messages(conn: Connection, outcomes: list[Outcome], now: Any) -> list[Outcome]:
    """Close the messages whose lease this worker still holds; returns their outcomes.

    The lease token fences in the UPDATE itself, and RETURNING says which rows
    it closed: one statement per (lease, status, availability), which is one
    or two for a batch.
    """
    groups: dict[tuple[UUID, MessageStatus, Any], list[UUID]] = defaultdict(list)
    for o in outcomes:
        available = now + timedelta(seconds=o.retry_delay) if o.retry_delay else now
        groups[(o.message.lease_token, o.status, available)].append(o.message.id)
    closed: set[UUID] = set()
    for (token, status, available), ids in groups.items():
        closed.update(conn.execute(_CLOSE_MESSAGES, {
            "m_ids": ids, "m_token": token, "m_status": status,
            "m_available": available}).scalars())
    return [o for o in outcomes if o.message.id in closed]


_CLOSE_ATTEMPT = Bulk(
    update(lineage_entries).where(lineage_entries.c.id == bindparam("l_id")).values(
        stage_status=bindparam("l_status"), completed_at=bindparam("l_now"),
        duration_ms=bindparam("l_ms"), adapter_name=bindparam("l_adapter"),
        adapter_index=bindparam("l_index"), error_info=bindparam("l_error"),
        meta=bindparam("l_meta"))
)


def _close_attempts(conn: Connection, kept: list[Outcome], now: Any) -> None:
    _CLOSE_ATTEMPT.execute(conn, [
        {"l_id": o.message.lineage_id,
         "l_status": StageStatus.COMPLETED if o.status == MessageStatus.COMPLETED
         else StageStatus.FAILED,
         "l_now": now, "l_ms": o.duration_ms, "l_adapter": o.adapter_name,
         "l_index": o.adapter_index, "l_error": o.error_info,
         "l_meta": {"worker": o.message.worker, "attempt": o.message.attempt,
                    "outputs": len(o.outputs), **o.meta}}
        for o in kept])


def _insert_outputs(conn: Connection, kept: list[Outcome]) -> None:
    rows: list[dict[str, Any]] = []
    for o in kept:
        if o.status != MessageStatus.COMPLETED:
            continue
        for start in range(0, len(o.outputs), ROWS_PER_STATEMENT):
            rows += item_rows(o.message.execution_id,
                              o.outputs[start:start + ROWS_PER_STATEMENT], o.paths)
            if len(rows) >= ROWS_PER_STATEMENT:
                insert_items(conn, rows)
                rows = []
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


class _Carried:
    """Follow-up messages leased to the committing worker as they are written."""

    def __init__(self, carry: Carry, now: Any) -> None:
        self.carry = carry
        self.token = new_id()
        self.expires = now + timedelta(seconds=carry.lease_seconds)
        self.claimed: list[Claimed] = []

    def take(self, row: dict[str, Any], producer: Outcome, item: NewItem,
             step_input: str) -> bool:
        """Lease `row` (a new message) here when this worker serves its queue and
        the batch has room; its input is `item`, which the producer just wrote."""
        if len(self.claimed) >= self.carry.limit or row["queue"] not in self.carry.queues:
            return False
        m = producer.message
        lineage_id = new_id()
        row.update(status=MessageStatus.LEASED, lease_owner=self.carry.worker,
                   lease_token=self.token, lease_expires_at=self.expires, attempt=1,
                   lineage_id=lineage_id)
        path = producer.paths.get(f"{item.stage}\x00{item.key}")
        stored = StoredItem(m.execution_id, step_input, item.key, item.correlation_id,
                            item.encoded.content_type, len(item.encoded.data),
                            item.encoded.content_hash, None if path else item.encoded.data,
                            path, row["created_at"])
        self.claimed.append(Claimed(
            row["id"], m.execution_id, m.tenant_id, m.config_id, row["step_index"],
            row["route"], item.key, m.correlation_id, m.replay_batch_id, 1, self.token,
            lineage_id, [stored], stored.content_hash, m.skip_cache, self.carry.worker))
        return True


def _follow_ups(conn: Connection, kept: list[Outcome], configs: ConfigLookup, now: Any,
                draining: set[UUID], carried: _Carried | None = None,
                ) -> tuple[dict[StepKey, StepDelta], int]:
    """Write the next steps' messages (none for a draining execution); returns the
    counter changes and how many messages were written."""
    deltas: dict[StepKey, StepDelta] = defaultdict(StepDelta)
    rows: list[dict[str, Any]] = []
    created = 0
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
                row = message_row(m.execution_id, index, step.name, step.queue,
                                  step.priority, item.key, m.execution_id,
                                  m.correlation_id, m.replay_batch_id, now, status)
                follow = deltas[(m.execution_id, index)]
                if carried is not None and status == MessageStatus.QUEUED:
                    follow.start |= carried.take(row, o, item, step.input)
                rows.append(row)
                follow.outstanding += 1
                if len(rows) == ROWS_PER_STATEMENT:
                    INSERT_MESSAGES.execute(conn, rows)
                    created, rows = created + len(rows), []
    INSERT_MESSAGES.execute(conn, rows)
    return deltas, created + len(rows)


_COUNT_RETRIES = (
    update(executions).where(executions.c.id == bindparam("e_id"))
    .values(retry_count=executions.c.retry_count + bindparam("e_n"))
)


def _count_retries(conn: Connection, kept: list[Outcome]) -> int:
    retries: dict[UUID, int] = defaultdict(int)
    for o in kept:
        if o.status == MessageStatus.QUEUED:
            retries[o.message.execution_id] += 1
    if retries:
        conn.execute(_COUNT_RETRIES, [{"e_id": e, "e_n": n} for e, n in retries.items()])
    return sum(retries.values())
