"""Executions: start, read, list, cancel, review, lineage (seeds 000, 002, 004)."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from typing import Annotated, Any
from uuid import UUID

import pydantic_core
from anyio.to_thread import run_sync
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel

from stageline.api import cursor as cursors
from stageline.api.deps import RuntimeDep, TenantDep
from stageline.api.endings import RECHECK_SECONDS, Endings
from stageline.api.errors import ApiError
from stageline.api.views import execution_detail, lineage_entry_fields
from stageline.domain.status import EXECUTION_TERMINAL, ExecutionStatus
from stageline.runtime import Runtime
from stageline.schemas.errors import NOT_FOUND_OR_INVALID, ErrorResponse
from stageline.schemas.executions import (
    CancelRequest,
    ExecutionCreate,
    ExecutionDetail,
    ExecutionList,
    ReviewAction,
)
from stageline.schemas.lineage import ExecutionLineageResponse
from stageline.store import control, executions, lineage, pipelines
from stageline.store.executions import ExecutionFilter, NewExecution
from stageline.store.ids import new_id
from stageline.store.types import utcnow

ERRORS = NOT_FOUND_OR_INVALID
TERMINAL = {str(s) for s in EXECUTION_TERMINAL}
router = APIRouter(prefix="/api/v1/executions", tags=["executions"], responses=ERRORS)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ExecutionDetail,
             responses={409: {"model": ErrorResponse}, 413: {"model": ErrorResponse}})
def start_execution(body: ExecutionCreate, runtime: RuntimeDep, tenant: TenantDep) -> Response:
    """Start an execution; the same idempotency key answers the execution it created."""
    labels = body.model_dump(include={"batch_id", "deployment_id", "session_id", "user_id",
                                      "step_key", "output_schema_name"}, exclude_none=True)
    # Looked up and built before the write transaction: on SQLite every start
    # waits for the one writer, and holds it only for the inserts. (A pipeline
    # archived in between still starts this one execution.)
    with runtime.db.read() as conn:
        if body.config_id is not None:
            version = runtime.version(conn, tenant, body.config_id)
            archived = pipelines.is_archived(conn, version.pipeline_id)
        else:
            config_id, archived = pipelines.find_startable(conn, tenant, body.pipeline or "",
                                                           body.version)
            version = runtime.version(conn, tenant, config_id)
    if archived:
        raise ApiError(409, "pipeline_archived", f"pipeline {version.pipeline!r} is archived")
    prepared = executions.prepare(tenant, NewExecution(
        version=version, payload=body.input, tag=body.tag, metadata=body.metadata,
        idempotency_key=body.idempotency_key, run_timeout_seconds=body.run_timeout_seconds,
        skip_cache=body.skip_cache, extra=labels,
    ), runtime.blobs, runtime.settings.inline_limit)
    record, created = runtime.starts.start(prepared)  # with the starts arriving alongside
    if created:
        steps = executions.initial_steps(record.id, version.config)
    else:
        with runtime.db.read() as conn:
            steps = executions.steps_of(conn, record.id)
            version = runtime.version(conn, tenant, record.config_id)
    if created:
        runtime.waker.notify()
    return _json(execution_detail(record, version, steps),
                 status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _json(model: BaseModel, status_code: int = status.HTTP_200_OK) -> Response:
    """Serialised once: returning the model would have FastAPI validate it again."""
    return Response(model.model_dump_json(), status_code=status_code,
                    media_type="application/json")


@router.get("", response_model=ExecutionList)
def list_executions(
    runtime: RuntimeDep, tenant: TenantDep,
    status_: Annotated[list[ExecutionStatus] | None, Query(alias="status")] = None,
    pipeline: Annotated[str | None, Query(max_length=128)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    parent_execution_id: UUID | None = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ExecutionList:
    """Newest first, with a cursor to the next page."""
    after = cursors.decode(cursor) if cursor else None
    with runtime.db.read() as conn:
        pipeline_id = None
        if pipeline is not None:
            pipeline_id = pipelines.find(conn, tenant, pipeline).pipeline_id
        flt = ExecutionFilter(status=[str(s) for s in status_] if status_ else None,
                              pipeline_id=pipeline_id, tag=tag,
                              parent_execution_id=parent_execution_id,
                              created_after=created_after, created_before=created_before)
        rows = executions.list_page(conn, tenant, flt, limit + 1, after)
        page = rows[:limit]
        items = [execution_detail(r, runtime.version(conn, tenant, r.config_id),
                                  executions.steps_of(conn, r.id), with_snapshot=False)
                 for r in page]
    next_cursor = cursors.encode(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return ExecutionList(items=items, next_cursor=next_cursor)


@router.get("/{execution_id}", response_model=ExecutionDetail)
async def get_execution(
    execution_id: str, runtime: RuntimeDep, tenant: TenantDep, request: Request,
    wait_seconds: Annotated[float, Query(ge=0, le=60, description=(
        "Long-poll: answer as soon as the execution has ended, or after this many "
        "seconds with its current state"))] = 0,
) -> Response:
    """One execution by id or tag; with `wait_seconds`, once it has ended."""
    detail = await run_sync(_detail, runtime, tenant, execution_id)
    deadline = time.monotonic() + wait_seconds
    endings: Endings = request.app.state.endings
    while detail.stageline_status not in TERMINAL and time.monotonic() < deadline:
        event = endings.register(UUID(detail.id))
        try:
            detail = await run_sync(_detail, runtime, tenant, detail.id)  # after registering
            if detail.stageline_status in TERMINAL:
                break
            with suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(RECHECK_SECONDS,
                                                         deadline - time.monotonic()))
        finally:
            endings.unregister(UUID(detail.id), event)
        detail = await run_sync(_detail, runtime, tenant, detail.id)
    return _json(detail)


def _detail(runtime: Runtime, tenant: UUID, execution_id: str) -> ExecutionDetail:
    with runtime.db.read() as conn:
        record = executions.resolve(conn, tenant, execution_id)
        version = runtime.version(conn, tenant, record.config_id)
        steps = executions.steps_of(conn, record.id)
    return execution_detail(record, version, steps)


@router.post("/{execution_id}/cancel", response_model=ExecutionDetail,
             responses={409: {"model": ErrorResponse}})
def cancel_execution(execution_id: str, runtime: RuntimeDep, tenant: TenantDep,
                     body: CancelRequest | None = None) -> ExecutionDetail:
    """Cancel: waiting messages are dropped, attempts in flight drain."""
    with runtime.db.write() as conn:
        record = executions.resolve(conn, tenant, execution_id)
        version = runtime.version(conn, tenant, record.config_id)
        control.cancel(conn, record, version.config, (body and body.cancelled_by) or "user")
        record = executions.get(conn, tenant, record.id)
        steps = executions.steps_of(conn, record.id)
    return execution_detail(record, version, steps)


@router.post("/{execution_id}/actions", response_model=ExecutionDetail,
             responses={409: {"model": ErrorResponse}})
def act_on_execution(execution_id: str, body: ReviewAction, runtime: RuntimeDep,
                     tenant: TenantDep) -> ExecutionDetail:
    """Approve or reject an execution waiting in review."""
    with runtime.db.write() as conn:
        record = executions.resolve(conn, tenant, execution_id)
        if record.status != ExecutionStatus.IN_REVIEW:
            raise ApiError(409, "not_in_review", f"execution is {record.status}, not in review")
        version = runtime.version(conn, tenant, record.config_id)
        decision = _decision(body)
        control.act(conn, record, version.config, body.action, decision)
        record = executions.get(conn, tenant, record.id)
        steps = executions.steps_of(conn, record.id)
    if body.action == "approve":
        runtime.waker.notify()
    return execution_detail(record, version, steps)


def _decision(body: ReviewAction) -> dict[str, Any]:
    return {"id": str(new_id()), "action": body.action, "description": body.description,
            "author": {"id": body.author_id, "email": body.author_email},
            "acted_at": utcnow().isoformat()}


@router.get("/{execution_id}/lineage", response_model=ExecutionLineageResponse)
def get_execution_lineage(
    execution_id: str, runtime: RuntimeDep, tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=10000, description="Maximum results")] = 1000,
) -> Response:
    """Lineage entries of an execution, ordered by started_at."""
    with runtime.db.read() as conn:
        record = executions.resolve(conn, tenant, execution_id)
        total, entries = lineage.for_execution(conn, record.id, limit)
    # The model's JSON from plain values, as the other lineage routes answer:
    # building 1,000 entry models cost more than the query.
    page = {"total": total, "execution_id": record.id,
            "entries": [lineage_entry_fields(e) for e in entries]}
    return Response(pydantic_core.to_json(page), media_type="application/json")
