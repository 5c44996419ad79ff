"""Replay (seed 002) and the replays of an execution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response, status
from sqlalchemy import Connection

from stageline.api.deps import RuntimeDep, TenantDep
from stageline.api.views import execution_response, replay_plan_response
from stageline.domain.replay import ReplayRejected, ReplaySource
from stageline.domain.status import EXECUTION_TERMINAL
from stageline.runtime import Runtime
from stageline.schemas.errors import ErrorResponse, HTTPValidationError
from stageline.schemas.executions import ExecutionResponse
from stageline.schemas.replay import (
    BulkReplayItem,
    BulkReplayRequest,
    BulkReplayResponse,
    ExecutionReplayRequest,
    ReplayFinding,
    ReplayPlanResponse,
)
from stageline.store import executions, pipelines, replay
from stageline.store.executions import ExecutionFilter
from stageline.store.pipelines import UnknownPipeline, Version
from stageline.store.records import ExecutionRecord
from stageline.store.replay import MissingStoredItems, ParentRunning, ReplayRequest

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Unknown stage or route, a route that "
          "does not consume the stage, or items that do not fit its input_schema"},
    404: {"model": ErrorResponse, "description": "Resource not found"},
    409: {"model": ErrorResponse, "description": "Parent still running, tag in use, or "
          "stored items missing"},
    422: {"model": HTTPValidationError, "description": "Validation Error"},
    503: {"model": ErrorResponse, "description": "Database or storage unavailable"},
}
router = APIRouter(tags=["replay"], responses=ERRORS)


@router.post("/api/v1/executions/{execution_id}/replay", status_code=status.HTTP_201_CREATED,
             response_model=ExecutionResponse | ReplayPlanResponse)
def replay_execution(execution_id: str, body: ExecutionReplayRequest, runtime: RuntimeDep,
                     tenant: TenantDep, response: Response
                     ) -> ExecutionResponse | ReplayPlanResponse:
    """Replay an execution from a stage into a route, optionally on another version.

    Creates a child execution linked to the parent, reusing the parent's earlier
    stages by reference, and publishes one message per selected item into
    `to_route`. With `dry_run`, answers the plan (200) and creates nothing.
    """
    request = ReplayRequest(ReplaySource(body.replay_source), body.from_stage, body.to_route,
                            body.from_path, body.metadata, body.tag, body.skip_cache)
    with runtime.db.write() as conn:
        parent = executions.resolve(conn, tenant, execution_id)
        child, outcome = _replay(runtime, conn, tenant, parent, body.config_id, request,
                                 dry_run=body.dry_run, cancel_running=body.cancel_running)
        if outcome.child_id is None:
            response.status_code = status.HTTP_200_OK
            return _with_warnings(replay_plan_response(parent, child, request, outcome),
                                  outcome)
        record = executions.get(conn, tenant, outcome.child_id)
    runtime.waker.notify()
    return execution_response(record)


def _with_warnings(plan: ReplayPlanResponse,
                   outcome: replay.ReplayOutcome) -> ReplayPlanResponse:
    """The plan's findings followed by its warnings, which leave `fits` as it is."""
    warnings = [ReplayFinding(code=code, message=message, severity="warning")
                for code, message in outcome.warnings]
    return plan.model_copy(update={"findings": [*plan.findings, *warnings]})


@router.get("/api/v1/executions/{execution_id}/replays", response_model=list[ExecutionResponse])
def list_replays(execution_id: str, runtime: RuntimeDep,
                 tenant: TenantDep) -> list[ExecutionResponse]:
    """The direct replays of an execution, newest first (each may have its own)."""
    with runtime.db.read() as conn:
        parent = executions.resolve(conn, tenant, execution_id)
        children = executions.list_page(conn, tenant,
                                        ExecutionFilter(parent_execution_id=parent.id), 1000,
                                        None)
    return [execution_response(c) for c in children]


@router.post("/api/v1/replays/bulk", response_model=BulkReplayResponse)
def bulk_replay(body: BulkReplayRequest, runtime: RuntimeDep,
                tenant: TenantDep) -> BulkReplayResponse:
    """Apply one replay to every ended execution that matches a filter.

    With `preview` (the default) each match is planned as a dry run and
    nothing is created; otherwise each replay is created in its own
    transaction, so one refusal does not stop the others.
    """
    with runtime.db.read() as conn:
        pipeline_id = (pipelines.find(conn, tenant, body.match.pipeline).pipeline_id
                       if body.match.pipeline else None)
        matches = executions.list_page(conn, tenant, ExecutionFilter(
            status=_ended(body.match.status),
            pipeline_id=pipeline_id, failed_route=body.match.failed_route,
            created_after=body.match.created_after, created_before=body.match.created_before,
        ), body.limit, None)
    results = [_replay_one(runtime, tenant, parent.id, body) for parent in matches]
    return BulkReplayResponse(preview=body.preview, matched=len(matches),
                              created=sum(r.outcome == "created" for r in results),
                              results=results)


def _ended(statuses: Sequence[str] | None) -> list[str]:
    """Only ended executions can be replayed; by default, all of them."""
    return list(statuses) if statuses else [str(s) for s in EXECUTION_TERMINAL]


def _replay_one(runtime: Runtime, tenant: UUID, parent_id: UUID,
                body: BulkReplayRequest) -> BulkReplayItem:
    request = ReplayRequest(ReplaySource(body.replay_source), body.from_stage, body.to_route,
                            body.from_path, body.metadata)
    try:
        with runtime.db.write() as conn:
            parent = executions.get(conn, tenant, parent_id)
            _, outcome = _replay(runtime, conn, tenant, parent, body.config_id, request,
                                 dry_run=body.preview)
    except (ReplayRejected, MissingStoredItems, ParentRunning, UnknownPipeline) as exc:
        code = getattr(exc, "code", None) or type(exc).__name__
        return BulkReplayItem(execution_id=parent_id, outcome="rejected", error_code=code,
                              detail=str(exc))
    if outcome.findings:
        code, detail = outcome.findings[0]
        return BulkReplayItem(execution_id=parent_id, outcome="rejected", error_code=code,
                              detail=detail)
    if outcome.child_id is not None:
        runtime.waker.notify()
    return BulkReplayItem(execution_id=parent_id,
                          outcome="matched" if body.preview else "created",
                          replay_execution_id=outcome.child_id, items=outcome.selection.count)


def _replay(runtime: Runtime, conn: Connection, tenant: UUID, parent: ExecutionRecord,
            config_id: UUID | None, request: ReplayRequest, *, dry_run: bool,
            cancel_running: bool = False) -> tuple[Version, replay.ReplayOutcome]:
    """Replay `parent` into its own version, or into the one named by `config_id`."""
    parent_version = runtime.version(conn, tenant, parent.config_id)
    child = pipelines.by_config_id(conn, tenant, config_id) if config_id else parent_version
    outcome = replay.start(conn, parent, parent_version.config, child, request, runtime.blobs,
                           runtime.settings.inline_limit, dry_run=dry_run,
                           cancel_running=cancel_running)
    return child, outcome
