"""Watching an execution: per-step statistics, its graph, and a stream of status events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from stageline.api.deps import RuntimeDep, TenantDep
from stageline.domain.config import PipelineConfig
from stageline.domain.graph import ENTRY_STAGE
from stageline.domain.status import EXECUTION_TERMINAL, ExecutionStatus
from stageline.runtime import Runtime
from stageline.schemas.errors import NOT_FOUND_OR_INVALID
from stageline.schemas.monitoring import (
    AdapterStats,
    DagEdge,
    DagNode,
    ExecutionDag,
    ExecutionEvent,
    ExecutionStats,
    StageNode,
    StepEvent,
    StepNode,
    StepStats,
)
from stageline.store import executions, stats
from stageline.store.db import DatabaseUnavailable
from stageline.store.records import ExecutionRecord, StepRunRecord
from stageline.store.stats import StepSummary, Summary

ERRORS = NOT_FOUND_OR_INVALID
router = APIRouter(prefix="/api/v1/executions", tags=["monitoring"], responses=ERRORS)

ExecutionRef = Annotated[str, Path(min_length=1, max_length=200,
                                   description="Execution id or tag")]
POLL_SECONDS = 0.2
PING_SECONDS = 15


@router.get("/{execution_id}/stats", response_model=ExecutionStats)
def get_execution_stats(execution_id: ExecutionRef, runtime: RuntimeDep,
                        tenant: TenantDep) -> ExecutionStats:
    """Per step and adapter: attempts by status, durations and throughput."""
    with runtime.db.read() as conn:
        record = executions.resolve(conn, tenant, execution_id)
        steps = stats.step_stats(conn, record.id)
    return ExecutionStats(execution_id=record.id, status=record.status,
                          steps=[_step_stats(s) for s in steps])


def _step_stats(step: StepSummary) -> StepStats:
    return StepStats(
        step_index=step.step.step_index, route_id=step.step.step_type, status=step.step.status,
        first_started_at=step.first_started_at, last_completed_at=step.last_completed_at,
        span_seconds=step.span_seconds, **_figures(step.summary),
        adapters=[AdapterStats(adapter_index=a.adapter_index, adapter_name=a.adapter_name,
                               **_figures(a.summary)) for a in step.adapters],
    )


def _figures(summary: Summary) -> dict[str, Any]:
    return {"counts": summary.counts, "avg_duration_ms": summary.avg_duration_ms,
            "p95_duration_ms": summary.p95_duration_ms,
            "completed_per_second": summary.completed_per_second}


@router.get("/{execution_id}/dag", response_model=ExecutionDag)
def get_execution_dag(execution_id: ExecutionRef, runtime: RuntimeDep,
                      tenant: TenantDep) -> ExecutionDag:
    """The execution's stages and steps as a graph, with item and message counts."""
    with runtime.db.read() as conn:
        record = executions.resolve(conn, tenant, execution_id)
        config = runtime.version(conn, tenant, record.config_id).config
        steps = executions.steps_of(conn, record.id)
        counts = stats.stage_counts(conn, record.id)
    return ExecutionDag(execution_id=record.id, status=record.status,
                        nodes=_nodes(config, steps, counts), edges=_edges(config))


def _nodes(config: PipelineConfig, steps: list[StepRunRecord],
           counts: dict[str, int]) -> list[DagNode]:
    stages = [ENTRY_STAGE, *(s.output for s in config.steps)]
    nodes: list[DagNode] = [StageNode(id=f"stage:{name}", name=name, items=counts.get(name, 0))
                            for name in stages]
    runs = {r.step_index: r for r in steps}
    for index, step in enumerate(config.steps):
        run = runs[index]
        nodes.append(StepNode(
            id=f"step:{step.name}", name=step.name, step_index=index, status=run.status,
            adapters=[a.name for a in step.adapters], fan_out=step.fan_out,
            collect=step.collect, review=step.review, outstanding=run.outstanding,
            completed=run.completed, failed=run.failed, attempts=run.attempts,
            source_step_type=run.source_step_type,
        ))
    return nodes


def _edges(config: PipelineConfig) -> list[DagEdge]:
    edges = []
    for step in config.steps:
        edges.append(DagEdge(source=f"stage:{step.input}", target=f"step:{step.name}"))
        edges.append(DagEdge(source=f"step:{step.name}", target=f"stage:{step.output}"))
    return edges


EVENTS_DOC = (
    "A text/event-stream. `execution` events carry an ExecutionEvent, `step` events a "
    "StepEvent, as JSON. The current state comes first; then one event per change, "
    "steps before the execution; the stream ends after the execution's terminal status."
)


EVENTS_RESPONSE: dict[str, Any] = {
    "description": EVENTS_DOC,
    "content": {"text/event-stream": {
        "schema": {"type": "string"},
        # OpenAPI 3.1 cannot type the events of a stream; name their data's schemas.
        "x-events": {"execution": ExecutionEvent.model_json_schema(),
                     "step": StepEvent.model_json_schema()},
    }},
}


@router.get("/{execution_id}/events", response_class=EventSourceResponse,
            responses={200: EVENTS_RESPONSE})
def stream_execution_events(execution_id: ExecutionRef, runtime: RuntimeDep,
                            tenant: TenantDep) -> EventSourceResponse:
    """Server-sent events of the execution's and its steps' status changes."""
    with runtime.db.read() as conn:
        record = executions.resolve(conn, tenant, execution_id)
    return EventSourceResponse(_events(runtime, tenant, record.id), ping=PING_SECONDS)


@dataclass(frozen=True)
class Watched:
    """What the stream reports, as last read."""

    execution: ExecutionEvent
    steps: dict[int, StepEvent]

    @property
    def finished(self) -> bool:
        return ExecutionStatus(self.execution.status) in EXECUTION_TERMINAL


async def _events(runtime: Runtime, tenant: UUID,
                  execution_id: UUID) -> AsyncIterator[ServerSentEvent]:
    seen: Watched | None = None
    while True:
        current = await _read(runtime, tenant, execution_id)
        if current is not None:
            for event in changes(seen, current):
                yield event
            seen = current
            if seen.finished:
                return
        await asyncio.sleep(POLL_SECONDS)


async def _read(runtime: Runtime, tenant: UUID, execution_id: UUID) -> Watched | None:
    try:
        # The store is synchronous: read it off the event loop.
        return await run_in_threadpool(_watch, runtime, tenant, execution_id)
    except DatabaseUnavailable:
        return None  # a restarting database is not the end of the execution


def _watch(runtime: Runtime, tenant: UUID, execution_id: UUID) -> Watched:
    with runtime.db.read() as conn:
        record = executions.get(conn, tenant, execution_id)
        steps = executions.steps_of(conn, execution_id)
    return Watched(_execution_event(record), {s.step_index: _step_event(s) for s in steps})


def _execution_event(record: ExecutionRecord) -> ExecutionEvent:
    return ExecutionEvent(execution_id=record.id, status=record.status,
                          completed_at=record.completed_at, error=record.error)


def _step_event(step: StepRunRecord) -> StepEvent:
    return StepEvent(execution_id=step.execution_id, step_index=step.step_index,
                     step_type=step.step_type, status=step.status,
                     outstanding=step.outstanding, completed=step.completed,
                     failed=step.failed, attempts=step.attempts)


def changes(before: Watched | None, after: Watched) -> list[ServerSentEvent]:
    """The events that tell a client who saw `before` what is new in `after`."""
    events = [ServerSentEvent(data=step.model_dump_json(), event="step")
              for index, step in after.steps.items()
              if before is None or before.steps.get(index) != step]
    if before is None or before.execution != after.execution:
        events.append(ServerSentEvent(data=after.execution.model_dump_json(), event="execution"))
    return events
