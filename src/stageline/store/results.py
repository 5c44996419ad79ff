"""What the steps of an execution produced, read back: a step's output stage
page by page, the output of the last completed step, and the items that
failed for good.

Stages are read as the execution sees them (`store.stages`): a replay's
stages hold the parent's items by reference, not by copy, and a step
copied from the parent records the execution that holds its items
(`source_execution_id`), which is where its `lookup_key` points.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Connection, func, select

from stageline.domain.status import MessageStatus, StepStatus
from stageline.store.executions import steps_of
from stageline.store.items import StoredItem, storage_path, to_item
from stageline.store.records import LineageRecord, StepRunRecord
from stageline.store.stages import read_stage, stage_query
from stageline.store.tables import lineage_entries, messages, step_runs

# Steps whose output stage is complete (in review: complete, waiting for a decision).
OUTPUT_COMPLETE = frozenset({StepStatus.COMPLETED, StepStatus.IN_REVIEW, StepStatus.SKIPPED})


class UnknownStep(LookupError):
    pass


class UnknownItem(LookupError):
    pass


def holder(execution_id: UUID, step: StepRunRecord) -> UUID:
    """The execution whose storage holds this step's output items."""
    return step.source_execution_id or execution_id


def has_output(step: StepRunRecord) -> bool:
    """Whether the step's first output item exists (or was inherited in a replay)."""
    return step.completed > 0 or step.source_execution_id is not None


def lookup_key(execution_id: UUID, step: StepRunRecord) -> str | None:
    """The storage prefix of the step's output items, once it has any."""
    if not has_output(step):
        return None
    return storage_path(holder(execution_id, step), step.output_stage, "").rstrip("/")


def step_of(conn: Connection, execution_id: UUID, step_index: int) -> StepRunRecord:
    row = conn.execute(select(step_runs).where(step_runs.c.execution_id == execution_id,
                                               step_runs.c.step_index == step_index)).first()
    if row is None:
        raise UnknownStep(f"execution {execution_id} has no step {step_index}")
    return StepRunRecord.from_row(row)


def item_page(conn: Connection, execution_id: UUID, step: StepRunRecord, after: str | None,
              limit: int) -> tuple[list[StoredItem], bool]:
    """Up to `limit` output items in key order after the key `after`, and
    whether more follow."""
    rows = read_stage(conn, execution_id, step.output_stage, after=after, limit=limit + 1)
    return rows[:limit], len(rows) > limit


def one_item(conn: Connection, execution_id: UUID, step: StepRunRecord,
             key: str) -> StoredItem:
    stage = stage_query(conn, execution_id, step.output_stage).subquery()
    row = conn.execute(select(stage).where(stage.c.item_key == key)).first()
    if row is None:
        raise UnknownItem(f"stage {step.output_stage!r} has no item {key!r}")
    return to_item(row)


def count_stage(conn: Connection, execution_id: UUID, stage: str) -> int:
    """How many items the stage holds, as the execution sees it."""
    sub = stage_query(conn, execution_id, stage).subquery()
    return int(conn.execute(select(func.count()).select_from(sub)).scalar_one())


@dataclass(frozen=True)
class StepOutput:
    """The first items of one step's output stage, and how many it holds."""

    step: StepRunRecord
    items: list[StoredItem]
    total: int


@dataclass(frozen=True)
class ExecutionOutputs:
    steps: list[StepRunRecord]
    failures: dict[int, list[LineageRecord]]  # step index -> final failed attempts
    last: StepOutput | None  # the output of the last step whose output is complete


def outputs_of(conn: Connection, execution_id: UUID, *, items: int,
               failures: int) -> ExecutionOutputs:
    """An execution's steps, what failed in each, and its latest complete output."""
    steps = steps_of(conn, execution_id)
    failed = {s.step_index: final_failures(conn, execution_id, s.step_index, failures)
              for s in steps if s.failed}
    return ExecutionOutputs(steps, failed, last_output(conn, execution_id, steps, items))


def last_output(conn: Connection, execution_id: UUID, steps: list[StepRunRecord],
                limit: int) -> StepOutput | None:
    """The output of the highest-indexed step whose output stage is complete
    (steps are in topological order): up to `limit` items and their count."""
    done = [s for s in steps if s.status in OUTPUT_COMPLETE and has_output(s)]
    if not done:
        return None
    step = max(done, key=lambda s: s.step_index)
    items = read_stage(conn, execution_id, step.output_stage, limit=limit)
    total = len(items) if len(items) < limit else count_stage(conn, execution_id,
                                                              step.output_stage)
    return StepOutput(step, items, total)


def final_failures(conn: Connection, execution_id: UUID, step_index: int,
                   limit: int) -> list[LineageRecord]:
    """The last attempt of each of the step's messages that failed for good,
    in item key order (earlier, retried attempts are not failures of the step)."""
    rows = conn.execute(
        select(lineage_entries)
        .join(messages, messages.c.lineage_id == lineage_entries.c.id)
        .where(messages.c.execution_id == execution_id, messages.c.step_index == step_index,
               messages.c.status == MessageStatus.FAILED)
        .order_by(messages.c.item_key, messages.c.id).limit(limit)
    )
    return [LineageRecord.from_row(r) for r in rows]
