"""Figures about one execution: per-step attempt statistics and per-stage item counts.

The statistics are computed in Python over the few columns they need; an
execution's lineage is read once per request.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, func, select

from stageline.domain.status import StageStatus
from stageline.store.executions import steps_of
from stageline.store.records import StepRunRecord
from stageline.store.stages import stage_query
from stageline.store.tables import lineage_entries, stage_items, stage_sources

le = lineage_entries


@dataclass(frozen=True)
class Attempt:
    """The columns of a lineage entry that the statistics read."""

    route_id: str
    adapter_index: int | None
    adapter_name: str | None
    stage_status: str
    duration_ms: float | None
    started_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    avg_duration_ms: float | None
    p95_duration_ms: float | None
    completed_per_second: float | None


@dataclass(frozen=True)
class AdapterSummary:
    adapter_index: int | None
    adapter_name: str | None
    summary: Summary


@dataclass(frozen=True)
class StepSummary:
    step: StepRunRecord
    first_started_at: datetime | None
    last_completed_at: datetime | None
    span_seconds: float | None
    summary: Summary
    adapters: list[AdapterSummary]


def step_stats(conn: Connection, execution_id: UUID) -> list[StepSummary]:
    """Every step of the execution, in pipeline order, with its attempts summarised."""
    by_route: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in _attempts(conn, execution_id):
        by_route[attempt.route_id].append(attempt)
    return [summarise_step(step, by_route.get(step.step_type, []))
            for step in steps_of(conn, execution_id)]


def _attempts(conn: Connection, execution_id: UUID) -> list[Attempt]:
    # route_id is null only on the input's `initiated` entry, which no step ran.
    rows = conn.execute(select(
        le.c.route_id, le.c.adapter_index, le.c.adapter_name, le.c.stage_status,
        le.c.duration_ms, le.c.started_at, le.c.completed_at,
    ).where(le.c.execution_id == execution_id, le.c.route_id.is_not(None)))
    return [Attempt(*row) for row in rows]


def summarise_step(step: StepRunRecord, attempts: Sequence[Attempt]) -> StepSummary:
    """Figures of one step's attempts, in all and per adapter."""
    first = min((a.started_at for a in attempts), default=None)
    last = max((a.completed_at for a in attempts if a.completed_at), default=None)
    span = (last - first).total_seconds() if first and last else None
    by_adapter: dict[tuple[int, str], list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_adapter[(_index(attempt.adapter_index), attempt.adapter_name or "")].append(attempt)
    adapters = [AdapterSummary(group[0].adapter_index, group[0].adapter_name,
                               summarise(group, span))
                for _, group in sorted(by_adapter.items())]
    return StepSummary(step, first, last, span, summarise(attempts, span), adapters)


def _index(adapter_index: int | None) -> int:
    return -1 if adapter_index is None else adapter_index


def summarise(attempts: Sequence[Attempt], span_seconds: float | None) -> Summary:
    """Counts by status; durations and throughput of the completed attempts."""
    counts = {str(s): 0 for s in StageStatus}
    for attempt in attempts:
        counts[attempt.stage_status] = counts.get(attempt.stage_status, 0) + 1
    durations = [a.duration_ms for a in attempts
                 if a.stage_status == StageStatus.COMPLETED and a.duration_ms is not None]
    done = counts[StageStatus.COMPLETED]
    rate = done / span_seconds if span_seconds and span_seconds > 0 else None
    return Summary(counts, _mean(durations), percentile(durations, 95), rate)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: Iterable[float], pct: float) -> float | None:
    """The nearest-rank percentile: a value that was actually observed."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def stage_counts(conn: Connection, execution_id: UUID) -> dict[str, int]:
    """Items per stage as the execution sees them: a replay's reused items included.

    Stages holding no item are absent.
    """
    rows = conn.execute(
        select(stage_items.c.stage_name, func.count().label("n"))
        .where(stage_items.c.execution_id == execution_id)
        .group_by(stage_items.c.stage_name))
    counts = {row.stage_name: row.n for row in rows}
    for stage in _reused_stages(conn, execution_id):
        visible = stage_query(conn, execution_id, stage).subquery()
        counts[stage] = conn.execute(select(func.count()).select_from(visible)).scalar_one()
    return counts


def _reused_stages(conn: Connection, execution_id: UUID) -> list[str]:
    return list(conn.execute(select(stage_sources.c.stage_name)
                             .where(stage_sources.c.execution_id == execution_id)).scalars())
