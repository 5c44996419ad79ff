"""Watching an execution: per-step statistics, its graph, and its status events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from stageline.schemas.lineage import StageStatusLiteral


class AttemptSummary(BaseModel):
    """Counts and timings of a set of lineage entries (attempts)."""

    counts: dict[StageStatusLiteral, int] = Field(
        description="Attempts by stage_status; every status is present, zero when unseen")
    avg_duration_ms: float | None = Field(
        default=None, description="Mean duration of the completed attempts")
    p95_duration_ms: float | None = Field(
        default=None, description="95th percentile (nearest rank) of the completed attempts' "
                                  "durations")
    completed_per_second: float | None = Field(
        default=None, description="Completed attempts divided by the step's active span; "
                                  "null until the span is measurable")


class AdapterStats(AttemptSummary):
    """Attempts that ended in, or are running, one adapter of the step's chain.

    A completed attempt is counted on the last adapter of the chain; a failed
    one on the adapter that raised.
    """

    adapter_index: int | None = Field(default=None, description="Position in the chain")
    adapter_name: str | None = Field(default=None, description="Adapter name")


class StepStats(AttemptSummary):
    """One step's attempts, in all and per adapter."""

    step_index: int = Field(description="Position of the step in the pipeline")
    route_id: str = Field(description="Step (route) name")
    status: str = Field(description="The step's status in this execution")
    first_started_at: datetime | None = Field(
        default=None, description="When the step's first attempt started")
    last_completed_at: datetime | None = Field(
        default=None, description="When the step's latest finished attempt ended")
    span_seconds: float | None = Field(
        default=None, description="The step's active span: first start to latest end")
    adapters: list[AdapterStats] = Field(description="The same figures per adapter")


class ExecutionStats(BaseModel):
    """Per-step and per-adapter statistics of an execution's lineage."""

    execution_id: UUID = Field(description="Execution UUID")
    status: str = Field(description="The execution's status (SPEC.md vocabulary)")
    steps: list[StepStats] = Field(description="One entry per step, in pipeline order")


class StageNode(BaseModel):
    """A stage: a named set of items, the output of one step (or the input)."""

    kind: Literal["stage"] = "stage"
    id: str = Field(description="Node id, `stage:<name>`")
    name: str = Field(description="Stage name")
    items: int = Field(description="Items stored in this stage of this execution")


class StepNode(BaseModel):
    """A step: reads one stage, runs its adapters, writes one stage."""

    kind: Literal["step"] = "step"
    id: str = Field(description="Node id, `step:<name>`")
    name: str = Field(description="Step (route) name")
    step_index: int = Field(description="Position of the step in the pipeline")
    status: str = Field(description="The step's status in this execution")
    adapters: list[str] = Field(description="Adapter names, in chain order")
    fan_out: bool = Field(description="One input item gives many output items")
    collect: bool = Field(description="All items of the input stage give one output")
    review: bool = Field(description="The execution stops for review after this step")
    outstanding: int = Field(description="Messages queued, leased or held")
    completed: int = Field(description="Messages completed")
    failed: int = Field(description="Messages failed for good")
    attempts: int = Field(description="Attempts finished, retries included")
    source_step_type: str | None = Field(
        default=None, description="For a step skipped in a replay: where its items came from")


DagNode = Annotated[StageNode | StepNode, Field(discriminator="kind")]


class DagEdge(BaseModel):
    """Items flow from `source` to `target`: stage to step, or step to stage."""

    source: str = Field(description="Node id the items leave")
    target: str = Field(description="Node id the items enter")


class ExecutionDag(BaseModel):
    """An execution's graph of stages and steps, with live counts, ready to draw."""

    execution_id: UUID = Field(description="Execution UUID")
    status: str = Field(description="The execution's status (SPEC.md vocabulary)")
    nodes: list[DagNode] = Field(description="Stages and steps")
    edges: list[DagEdge] = Field(description="stage -> step (input), step -> stage (output)")


class ExecutionEvent(BaseModel):
    """Data of an `execution` server-sent event: the execution's status changed."""

    execution_id: UUID
    status: str = Field(description="The execution's status (SPEC.md vocabulary)")
    completed_at: datetime | None = None
    error: str | None = None


class StepEvent(BaseModel):
    """Data of a `step` server-sent event: a step's status or counts changed."""

    execution_id: UUID
    step_index: int
    step_type: str
    status: str
    outstanding: int
    completed: int
    failed: int
    attempts: int
