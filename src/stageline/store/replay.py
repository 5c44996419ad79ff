"""Creating a replay: a child execution that reuses its parent's stages by
reference and publishes messages into `to_route`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Connection, select

from stageline.domain.config import PipelineConfig
from stageline.domain.items import decode, encode
from stageline.domain.replay import (
    SAMPLE_SIZE,
    ReplayPlan,
    ReplayRejected,
    ReplaySource,
    StageMode,
    check_item_shapes,
    plan_replay,
    shape_warnings,
)
from stageline.domain.status import EXECUTION_TERMINAL, ExecutionStatus, StageStatus, StepStatus
from stageline.storage.blobs import BlobStore
from stageline.store.control import cancel
from stageline.store.counters import add_outstanding
from stageline.store.dialect import notify_work
from stageline.store.executions import TagInUse, message_row, step_rows, tag_taken
from stageline.store.ids import new_id
from stageline.store.items import NewItem, StoredItem, insert_items, item_rows, offload
from stageline.store.pipelines import Version
from stageline.store.progress import settle_execution
from stageline.store.records import ExecutionRecord
from stageline.store.stages import owner, read_stage, source_of
from stageline.store.tables import (
    executions,
    lineage_entries,
    messages,
    stage_sources,
    step_runs,
)
from stageline.store.types import utcnow


class ParentRunning(Exception):
    """The parent has not finished; replaying it now would race its own work."""


class MissingStoredItems(Exception):
    """Items the replay needs are recorded but their bytes are gone."""


@dataclass(frozen=True)
class ReplayRequest:
    source: ReplaySource
    from_stage: str
    to_route: str
    from_path: str | None = None
    metadata: dict[str, Any] | None = None
    tag: str | None = None
    skip_cache: bool = False


@dataclass
class Selection:
    """The items a replay publishes, and manual items it stores first."""

    items: list[StoredItem] = field(default_factory=list)
    uploads: list[NewItem] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items) + len(self.uploads)


def check_parent(parent: ExecutionRecord) -> None:
    if ExecutionStatus(parent.status) not in EXECUTION_TERMINAL:
        raise ParentRunning(f"execution {parent.id} is {parent.status}; replay it once it has "
                            "ended, or ask to cancel it first")


def plan(parent_config: PipelineConfig, child: Version, req: ReplayRequest) -> ReplayPlan:
    return plan_replay(parent_config, child.config, req.from_stage, req.to_route, req.source,
                       req.from_path)


def select_items(conn: Connection, parent: ExecutionRecord, req: ReplayRequest,
                 blobs: BlobStore) -> Selection:
    """Which items go into `to_route`; raises when stored bytes are missing."""
    if req.source == ReplaySource.LINEAGE:
        done = completed_keys(conn, parent.id, req.to_route, req.from_stage)
        chosen = [i for i in read_stage(conn, parent.id, req.from_stage) if i.key not in done]
        selection = Selection(chosen)
    elif req.source == ReplaySource.STORAGE:
        prefix = _key_prefix(parent.id, req.from_stage, req.from_path)
        selection = Selection(read_stage(conn, parent.id, req.from_stage, prefix=prefix))
    else:
        selection = _manual(conn, parent, req, blobs)
    if req.source != ReplaySource.LINEAGE and selection.count == 0:
        raise ReplayRejected("no_items", f"no items of stage {req.from_stage!r} match "
                             f"from_path {req.from_path!r}")
    _require_bytes(selection.items, blobs)
    return selection


def check_shapes(child: Version, replay_plan: ReplayPlan, req: ReplayRequest,
                 selection: Selection, blobs: BlobStore) -> None:
    """Refuse (`item_shape_mismatch`) when the first items by key that the replay
    would publish do not fit `to_route`'s input_schema."""
    route = child.config.steps[replay_plan.to_route_index]
    if route.input_schema is not None:
        check_item_shapes(route, req.from_stage, _sample(selection, blobs))


def _sample(selection: Selection, blobs: BlobStore) -> list[tuple[str, Any]]:
    items: list[StoredItem | NewItem] = [*selection.items, *selection.uploads]
    first = sorted(items, key=lambda item: item.key)[:SAMPLE_SIZE]
    return [(item.key, _value(item, blobs)) for item in first]


def _value(item: StoredItem | NewItem, blobs: BlobStore) -> Any:
    if isinstance(item, NewItem):
        return decode(item.encoded.data, item.encoded.content_type)
    return item.load(blobs)


def completed_keys(conn: Connection, execution_id: UUID, route: str, stage: str) -> set[str]:
    """Input keys that completed at `route` in this execution or, for keys it
    did not run itself, in the executions it reused them from."""
    done = _lineage_keys(conn, execution_id, route, [StageStatus.COMPLETED])
    ran = _lineage_keys(conn, execution_id, route, list(StageStatus))
    source = source_of(conn, execution_id, _output_of(conn, execution_id, route) or "")
    if source is not None:
        inherited = completed_keys(conn, source.source_execution_id, route, stage)
        done |= inherited - ran
    return done


def _lineage_keys(conn: Connection, execution_id: UUID, route: str,
                  statuses: list[StageStatus]) -> set[str]:
    rows = conn.execute(select(lineage_entries.c.item_key).where(
        lineage_entries.c.execution_id == execution_id, lineage_entries.c.route_id == route,
        lineage_entries.c.stage_status.in_([str(s) for s in statuses])).distinct())
    return {r.item_key for r in rows if r.item_key is not None}


def _output_of(conn: Connection, execution_id: UUID, route: str) -> str | None:
    return conn.execute(select(step_runs.c.output_stage).where(
        step_runs.c.execution_id == execution_id, step_runs.c.step_type == route)).scalar()


def _key_prefix(parent_id: UUID, stage: str, from_path: str | None) -> str | None:
    """from_path as a key prefix; the storage form `{execution}/{stage}/...` works too."""
    if not from_path:
        return None
    storage_form = f"{parent_id}/{stage}/"
    return from_path[len(storage_form):] if from_path.startswith(storage_form) else from_path


def _manual(conn: Connection, parent: ExecutionRecord, req: ReplayRequest,
            blobs: BlobStore) -> Selection:
    """Items at from_path: the parent's own under that key, else files under that path."""
    assert req.from_path is not None
    prefix = _key_prefix(parent.id, req.from_stage, req.from_path)
    stored = read_stage(conn, parent.id, req.from_stage, prefix=prefix)
    if stored:
        return Selection(stored)
    uploads = []
    for key, data in blobs.files_under(req.from_path):
        value: Any = data
        if key.endswith(".json"):
            key = key[: -len(".json")]
            value = _json_or_bytes(data)
        uploads.append(NewItem(req.from_stage, key, None, encode(value)))
    return Selection(uploads=uploads)


def _json_or_bytes(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data


def _require_bytes(items: list[StoredItem], blobs: BlobStore) -> None:
    missing = [i.key for i in items if i.storage_path and not blobs.exists(i.storage_path)]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise MissingStoredItems(f"{len(missing)} stored items of the parent are missing from "
                                 f"stage storage: {shown}")


def create(conn: Connection, parent: ExecutionRecord, child: Version, req: ReplayRequest,
           replay_plan: ReplayPlan, selection: Selection, blobs: BlobStore,
           inline_limit: int) -> UUID:
    """Write the child execution, its reused stages, and its first messages."""
    child_id, now, batch = new_id(), utcnow(), str(new_id())
    conn.execute(executions.insert().values(
        id=child_id, tenant_id=parent.tenant_id, pipeline_id=child.pipeline_id,
        config_id=child.config_id, status=ExecutionStatus.PENDING, tag=req.tag,
        payload=parent.payload, meta=req.metadata, parent_execution_id=parent.id,
        root_execution_id=parent.root_execution_id or parent.id, replay_source=req.source,
        replay_batch_id=batch, replay_request={
            "from_stage": req.from_stage, "to_route": req.to_route,
            "from_path": req.from_path, "config_id": str(child.config_id)},
        source_key=parent.source_key, queue_name=child.config.steps[0].queue, retry_count=0,
        skip_cache=req.skip_cache, created_at=now, updated_at=now,
    ))
    _steps(conn, child_id, parent.id, child.config, replay_plan)
    _stage_sources(conn, child_id, parent.id, req, replay_plan)
    _publish(conn, child_id, child.config, replay_plan, selection, batch, blobs, inline_limit)
    settle_execution(conn, child_id, child.config)
    notify_work(conn)
    return child_id


def _steps(conn: Connection, child_id: UUID, parent_id: UUID, config: PipelineConfig,
           replay_plan: ReplayPlan) -> None:
    rows = step_rows(child_id, config)
    reused = {r.stage: r for r in replay_plan.reused}
    now = utcnow()
    for index in replay_plan.skip_steps:
        stage = config.steps[index].output
        holder = owner(conn, parent_id, stage)
        rows[index].update(
            status=StepStatus.SKIPPED, source_step_type=reused[stage].source_step,
            source_execution_id=holder, checkpoint_id=f"{holder}/{stage}",
            started_at=now, finished_at=now)
    conn.execute(step_runs.insert(), rows)


def _stage_sources(conn: Connection, child_id: UUID, parent_id: UUID, req: ReplayRequest,
                   replay_plan: ReplayPlan) -> None:
    rows = [{"execution_id": child_id, "stage_name": "input", "source_execution_id": parent_id,
             "mode": StageMode.ALL, "producer_step": None}]
    for reused in replay_plan.reused:
        mode = reused.mode
        if reused.stage == req.from_stage and req.source == ReplaySource.MANUAL:
            mode = StageMode.FILL  # uploaded items override the parent's by key
        rows.append({"execution_id": child_id, "stage_name": reused.stage,
                     "source_execution_id": parent_id, "mode": mode,
                     "producer_step": replay_plan.producers.get(reused.stage)})
    conn.execute(stage_sources.insert(), rows)


def _publish(conn: Connection, child_id: UUID, config: PipelineConfig,
             replay_plan: ReplayPlan, selection: Selection, batch: str, blobs: BlobStore,
             inline_limit: int) -> None:
    route = config.steps[replay_plan.to_route_index]
    now = utcnow()
    if selection.uploads:
        insert_items(conn, item_rows(child_id, selection.uploads,
                                     offload(child_id, selection.uploads, blobs, inline_limit)))
    rows = [message_row(child_id, replay_plan.to_route_index, route.name, route.queue,
                        route.priority, item.key, item.execution_id, item.correlation_id,
                        batch, now) for item in selection.items]
    rows += [message_row(child_id, replay_plan.to_route_index, route.name, route.queue,
                         route.priority, item.key, child_id, None, batch, now)
             for item in selection.uploads]
    if route.collect and rows:
        rows = rows[:1]
        rows[0].update(item_key=None, input_execution_id=child_id, parent_correlation_id=None)
    if rows:
        conn.execute(messages.insert(), rows)
        add_outstanding(conn, [(child_id, replay_plan.to_route_index)] * len(rows))


@dataclass(frozen=True)
class ReplayOutcome:
    plan: ReplayPlan | None  # None when a dry run found the replay cannot be planned
    selection: Selection
    child_id: UUID | None  # None for a dry run
    # (code, message): what would refuse the replay ...
    findings: list[tuple[str, str]] = field(default_factory=list)
    # ... and what it would run with, but a user should know (a dry run's only)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def start(conn: Connection, parent: ExecutionRecord, parent_config: PipelineConfig,
          child: Version, req: ReplayRequest, blobs: BlobStore, inline_limit: int, *,
          dry_run: bool = False, cancel_running: bool = False) -> ReplayOutcome:
    """Validate, select and (unless a dry run) create the replay, in one transaction.

    Every check runs before anything is written, so a refused replay creates nothing.
    A dry run reports what would refuse it as findings instead of raising.
    """
    if dry_run:
        return preview(conn, parent, parent_config, child, req, blobs)
    replay_plan = plan(parent_config, child, req)
    if req.tag and tag_taken(conn, parent.tenant_id, req.tag):
        raise TagInUse(f"tag {req.tag!r} is already used by another execution")
    running = ExecutionStatus(parent.status) not in EXECUTION_TERMINAL
    if running and not dry_run and not cancel_running:
        check_parent(parent)
    blobs.ping()
    selection = select_items(conn, parent, req, blobs)
    check_shapes(child, replay_plan, req, selection, blobs)
    if running:
        cancel(conn, parent, parent_config, "replay")
    child_id = create(conn, parent, child, req, replay_plan, selection, blobs, inline_limit)
    return ReplayOutcome(replay_plan, selection, child_id)


def preview(conn: Connection, parent: ExecutionRecord, parent_config: PipelineConfig,
            child: Version, req: ReplayRequest, blobs: BlobStore) -> ReplayOutcome:
    """The plan, with every reason the replay would be refused as a finding:
    whether the chosen config fits the parent's stages (its stages and routes,
    and a sample of the items against the route's input_schema) is learnt here
    rather than from a failure mid-run. Warnings name what the replay would run
    with but changes: a reused stage's declared shape, a stage the config dropped."""
    findings: list[tuple[str, str]] = []
    replay_plan: ReplayPlan | None = None
    selection = Selection()
    try:
        replay_plan = plan(parent_config, child, req)
    except ReplayRejected as exc:
        findings.append((exc.code, str(exc)))
    if req.tag and tag_taken(conn, parent.tenant_id, req.tag):
        findings.append(("tag_in_use", f"tag {req.tag!r} is already used"))
    if ExecutionStatus(parent.status) not in EXECUTION_TERMINAL:
        findings.append(("parent_running", f"execution {parent.id} is {parent.status}: "
                         "replay it once it has ended, or with cancel_running"))
    if replay_plan is None:
        return ReplayOutcome(None, selection, None, findings)
    try:
        blobs.ping()
        selection = select_items(conn, parent, req, blobs)
        check_shapes(child, replay_plan, req, selection, blobs)
    except ReplayRejected as exc:
        findings.append((exc.code, str(exc)))
    except MissingStoredItems as exc:
        findings.append(("stored_items_missing", str(exc)))
    warnings = shape_warnings(parent_config, child.config, replay_plan)
    return ReplayOutcome(replay_plan, selection, None, findings, warnings)
