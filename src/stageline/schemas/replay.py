"""Seed 002: the replay request, and Stageline's dry-run plan."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ExecutionReplayRequest(BaseModel):
    """Request to replay a pipeline execution.

    The execution to replay is named by the `execution_id` path parameter (an
    id or a tag). With `config_id`, the steps from `to_route` on come from that
    pipeline version; the stages before it come from the parent.
    """

    model_config = ConfigDict(extra="forbid")

    replay_source: Literal["storage", "lineage", "manual"] = Field(
        description="Type of replay")
    from_stage: str = Field(min_length=1, max_length=128,
                            description="Pipeline stage to replay from (e.g. 'markdown_segmented')")
    to_route: str = Field(min_length=1, max_length=128,
                          description="Target route name (e.g. 'embedding_generator')")
    from_path: str | None = Field(default=None, min_length=1, max_length=1024)
    metadata: dict[str, Any] | None = None
    tag: str | None = Field(default=None, min_length=1, max_length=200)
    config_id: UUID | None = None
    dry_run: bool = Field(default=False, description="Answer the plan; create nothing")
    cancel_running: bool = Field(default=False,
                                 description="Cancel the parent first if it is still running")
    skip_cache: bool = False


class ReusedStageResponse(BaseModel):
    stage: str
    mode: Literal["all", "fill"]
    source_step_type: str | None
    source_execution_id: UUID


class PlannedStepResponse(BaseModel):
    step_index: int
    step_type: str
    action: Literal["run", "skip"]
    items: int | None = Field(default=None,
                              description="messages published into this step now (to_route)")


class ReplayFinding(BaseModel):
    code: str = Field(description="Stable code: for an error, the error_code the replay "
                                  "would answer")
    message: str
    severity: Literal["error", "warning"] = Field(
        default="error", description="error: the replay would be refused; warning: it "
                                     "would run, but look (stage_shape_changed, stage_removed)")


class ReplayPlanResponse(BaseModel):
    """What a replay would do: nothing has been created. `fits` is false when an
    error finding says the replay would be refused (the config does not fit the
    parent's stages, sampled items do not fit the route's input_schema, the
    parent still runs, a tag is taken, items are missing); warnings leave it true."""

    dry_run: Literal[True] = True
    fits: bool
    findings: list[ReplayFinding]
    parent_execution_id: UUID
    config_id: UUID
    replay_source: Literal["storage", "lineage", "manual"]
    from_stage: str
    to_route: str
    items: int
    reused_stages: list[ReusedStageResponse]
    steps: list[PlannedStepResponse]


class ExecutionMatch(BaseModel):
    """Which executions a bulk replay applies to (all conditions must hold)."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str | None = Field(default=None, max_length=128)
    status: list[Literal["completed", "completed_with_errors", "failed", "cancelled",
                         "dropped"]] | None = Field(default=None, max_length=5)
    failed_route: str | None = Field(default=None, max_length=128,
                                     description="a step of this name ended failed")
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None


class BulkReplayRequest(BaseModel):
    """The same replay applied to every execution that matches a filter."""

    model_config = ConfigDict(extra="forbid")

    match: ExecutionMatch
    replay_source: Literal["storage", "lineage", "manual"]
    from_stage: str = Field(min_length=1, max_length=128)
    to_route: str = Field(min_length=1, max_length=128)
    from_path: str | None = Field(default=None, min_length=1, max_length=1024)
    config_id: UUID | None = None
    metadata: dict[str, Any] | None = None
    preview: bool = Field(default=True, description="List the matches; create nothing")
    limit: int = Field(default=100, ge=1, le=500)


class BulkReplayItem(BaseModel):
    execution_id: UUID
    outcome: Literal["matched", "created", "rejected"]
    replay_execution_id: UUID | None = None
    items: int | None = None
    error_code: str | None = None
    detail: str | None = None


class BulkReplayResponse(BaseModel):
    preview: bool
    matched: int
    created: int
    results: list[BulkReplayItem]
