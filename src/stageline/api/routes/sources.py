"""Sources: named input channels bound to a pipeline, and the executions
started through them as seed 001 shows them (`/sources/{sourceKey}/v1/...`,
where `X-Clinia-API-Key` authenticates too)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, status
from pydantic import ValidationError
from sqlalchemy import Connection

from stageline.api import cursor as cursors
from stageline.api.deps import RuntimeDep, TenantDep
from stageline.api.errors import ApiError
from stageline.api.seed_views import (
    looks_like_operation,
    seed_001_statuses,
    source_execution,
    source_response,
)
from stageline.schemas.errors import ErrorResponse, HTTPValidationError
from stageline.schemas.sources import (
    OperationInput,
    PipelineExecution,
    PipelineExecutionList,
    Seed001Status,
    SourceCreate,
    SourceList,
    SourceResponse,
)
from stageline.store import executions, results, sources
from stageline.store.executions import ExecutionFilter
from stageline.store.results import ExecutionOutputs
from stageline.store.sources import SourceRecord

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown source, pipeline or execution"},
    422: {"model": HTTPValidationError, "description": "Validation Error"},
}
router = APIRouter(tags=["sources"], responses=ERRORS)

SourceKey = Annotated[str, Path(alias="sourceKey", max_length=128,
                                description="The key of the source.")]
WithBody = Annotated[bool, Query(
    alias="withOperationBody",
    description="Include the body of the operation that triggered the execution and of "
                "the operation it processed")]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=512)]
PROCESSED_ITEMS = 100  # output items read into processedOperation's body, at most
FAILURE_DETAILS = 100  # failed items listed in a step's error details, at most


@router.post("/api/v1/sources", status_code=status.HTTP_201_CREATED,
             response_model=SourceResponse, responses={409: {"model": ErrorResponse}})
def create_source(body: SourceCreate, runtime: RuntimeDep, tenant: TenantDep) -> SourceResponse:
    """Create a source bound to one of the tenant's pipelines; 409 if the key is taken."""
    with runtime.db.write() as conn:
        try:
            record = sources.create(conn, tenant, body.key, body.pipeline)
        except sources.SourceExists as exc:
            raise ApiError(409, "source_exists", str(exc)) from exc
    return source_response(record)


@router.get("/api/v1/sources", response_model=SourceList)
def list_sources(runtime: RuntimeDep, tenant: TenantDep, limit: Limit = 100,
                 cursor: Cursor = None) -> SourceList:
    """The tenant's sources in key order; `cursor` is the last key of the previous page."""
    with runtime.db.read() as conn:
        rows = sources.list_page(conn, tenant, cursor, limit + 1)
    page = rows[:limit]
    return SourceList(items=[source_response(r) for r in page],
                      next_cursor=page[-1].key if len(rows) > limit else None)


@router.get("/api/v1/sources/{sourceKey}", response_model=SourceResponse)
def get_source(source_key: SourceKey, runtime: RuntimeDep, tenant: TenantDep) -> SourceResponse:
    """One source by key."""
    with runtime.db.read() as conn:
        return source_response(_source(conn, tenant, source_key))


@router.post("/sources/{sourceKey}/v1/pipelines/executions",
             status_code=status.HTTP_201_CREATED, response_model=PipelineExecution,
             response_model_exclude_unset=True,
             responses={400: {"model": ErrorResponse}, 413: {"model": ErrorResponse}})
def start_source_execution(
    source_key: SourceKey, runtime: RuntimeDep, tenant: TenantDep,
    body: Annotated[Any, Body(description="An operation {taskId, action, target, body}, "
                                          "or any JSON input")],
    with_operation_body: WithBody = False,
) -> PipelineExecution:
    """Start an execution of the source's pipeline (its latest version) on the
    body. A body with action, target and body is the triggering operation
    itself and must be a valid one (400 otherwise)."""
    _check_operation(body)
    with runtime.db.write() as conn:
        source = _source(conn, tenant, source_key)
        record = sources.start_execution(conn, tenant, source, body, runtime.blobs,
                                         runtime.settings.inline_limit)
        outputs = _outputs(conn, record.id, with_operation_body)
    runtime.waker.notify()
    return source_execution(record, source, outputs, runtime.blobs, with_operation_body)


@router.get("/sources/{sourceKey}/v1/pipelines/executions",
            response_model=PipelineExecutionList, response_model_exclude_unset=True,
            responses={400: {"model": ErrorResponse}})
def list_source_executions(
    source_key: SourceKey, runtime: RuntimeDep, tenant: TenantDep,
    status_: Annotated[list[Seed001Status] | None, Query(alias="status")] = None,
    limit: Limit = 50, cursor: Cursor = None, with_operation_body: WithBody = False,
) -> PipelineExecutionList:
    """The source's executions, newest first, optionally only those in the
    given statuses (e.g. `status=IN_REVIEW`: the review queue)."""
    after = cursors.decode(cursor) if cursor else None
    with runtime.db.read() as conn:
        source = _source(conn, tenant, source_key)
        flt = ExecutionFilter(source_key=source.key,
                              status=seed_001_statuses(list(status_)) if status_ else None)
        rows = executions.list_page(conn, tenant, flt, limit + 1, after)
        page = rows[:limit]
        outputs = [_outputs(conn, r.id, with_operation_body) for r in page]
    next_cursor = cursors.encode(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    data = [source_execution(r, source, o, runtime.blobs, with_operation_body)
            for r, o in zip(page, outputs, strict=True)]
    return PipelineExecutionList(data=data, nextCursor=next_cursor)


@router.get("/sources/{sourceKey}/v1/pipelines/executions/{pipelineExecutionId}",
            response_model=PipelineExecution, response_model_exclude_unset=True,
            responses={409: {"model": ErrorResponse}})
def get_source_execution(
    source_key: SourceKey, runtime: RuntimeDep, tenant: TenantDep,
    execution_id: Annotated[str, Path(alias="pipelineExecutionId", max_length=200,
                                      description="The id of the pipeline execution.")],
    with_operation_body: WithBody = False,
) -> PipelineExecution:
    """Returns the pipeline execution (by id or tag) started through this
    source: status, steps with review decisions and errors, the operation
    that triggered it and the one it processed (seed 001)."""
    with runtime.db.read() as conn:
        source = _source(conn, tenant, source_key)
        record = sources.execution_of(conn, tenant, source, execution_id)
        outputs = _outputs(conn, record.id, with_operation_body)
    return source_execution(record, source, outputs, runtime.blobs, with_operation_body)


def _source(conn: Connection, tenant: UUID, key: str) -> SourceRecord:
    try:
        return sources.get(conn, tenant, key)
    except sources.UnknownSource as exc:
        raise ApiError(404, "source_not_found", str(exc)) from exc


def _outputs(conn: Connection, execution_id: UUID, with_body: bool) -> ExecutionOutputs:
    """What seed 001 shows of an execution's steps; without bodies, only a
    single output item is read (it may be an operation)."""
    return results.outputs_of(conn, execution_id, items=PROCESSED_ITEMS if with_body else 2,
                              failures=FAILURE_DETAILS)


def _check_operation(body: Any) -> None:
    """An input shaped like an operation must be a valid one."""
    if not looks_like_operation(body):
        return
    try:
        OperationInput.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, "invalid_operation", "the body has action, target and body but "
                       f"is not a valid operation: {where}: {first['msg']}") from exc
