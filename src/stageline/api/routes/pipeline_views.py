"""Seed 003: an execution polled for per-step status, and each step's output
items (partial results, readable while the execution runs)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import Connection

from stageline.api.deps import RuntimeDep, TenantDep
from stageline.api.errors import ApiError
from stageline.api.seed_views import pipeline_execution, result_page
from stageline.runtime import Runtime
from stageline.schemas.errors import ErrorResponse, HTTPValidationError
from stageline.schemas.pipeline_views import PipelineExecutionResponse, StepResultPage
from stageline.store import executions, results
from stageline.store.items import StoredItem
from stageline.store.records import ExecutionRecord, StepRunRecord

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown execution, step or item"},
    422: {"model": HTTPValidationError, "description": "Validation Error"},
}
RAW_ITEM: dict[int | str, dict[str, Any]] = {
    200: {"description": "A page of items; with `key`, that one item's bytes in its own "
                         "content type",
          "content": {"application/octet-stream": {}}},
    409: {"model": ErrorResponse, "description": "An item's bytes are missing from storage"},
    503: {"model": ErrorResponse, "description": "Storage or database unavailable"},
}
router = APIRouter(prefix="/api/v1/pipelines/executions", tags=["pipeline-executions"],
                   responses=ERRORS)


@router.get("/{execution_id}", response_model=PipelineExecutionResponse)
def get_pipeline_execution(execution_id: str, runtime: RuntimeDep,
                           tenant: TenantDep) -> PipelineExecutionResponse:
    """Poll an execution (by id or tag): its status and every step's status.

    A step's `lookup_key` (where its output items are stored) and
    `result_url` (where the API returns them) appear as soon as its first
    output item exists, so finished stages can be read while the execution
    still runs.
    """
    with runtime.db.read() as conn:
        record = executions.resolve(conn, tenant, execution_id)
        version = runtime.version(conn, tenant, record.config_id)
        steps = executions.steps_of(conn, record.id)
    return pipeline_execution(record, version, steps)


@router.get("/{execution_id}/steps/{step_index}/result", response_model=StepResultPage,
            responses=RAW_ITEM)
def get_step_result(
    execution_id: str, step_index: Annotated[int, Path(ge=0, le=10000)], runtime: RuntimeDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 100,
    cursor: Annotated[str | None, Query(max_length=512,
                                        description="The last item key of the previous "
                                                    "page")] = None,
    key: Annotated[str | None, Query(min_length=1, max_length=512,
                                     description="Answer this one item, raw")] = None,
) -> StepResultPage | Response:
    """A step's output items in key order, each with its decoded value
    (bytes items as base64), readable while the execution runs.

    With `key`, the one item's bytes in its own content type instead
    (JSON as `application/json`, bytes as `application/octet-stream`).
    """
    if key is not None:
        return _raw_item(runtime, tenant, execution_id, step_index, key)
    with runtime.db.read() as conn:
        record, step = _execution_step(conn, tenant, execution_id, step_index)
        items, more = results.item_page(conn, record.id, step, cursor, limit)
    return result_page(record.id, step, items, more, runtime.blobs)


def _raw_item(runtime: Runtime, tenant: UUID, execution_id: str, step_index: int,
              key: str) -> Response:
    with runtime.db.read() as conn:
        record, step = _execution_step(conn, tenant, execution_id, step_index)
        item = _item(conn, record.id, step, key)
    return Response(content=item.raw(runtime.blobs), media_type=item.content_type,
                    headers={"ETag": f'"{item.content_hash}"'})


def _execution_step(conn: Connection, tenant: UUID, execution_id: str,
                    step_index: int) -> tuple[ExecutionRecord, StepRunRecord]:
    record = executions.resolve(conn, tenant, execution_id)
    try:
        return record, results.step_of(conn, record.id, step_index)
    except results.UnknownStep as exc:
        raise ApiError(404, "step_not_found", str(exc)) from exc


def _item(conn: Connection, execution_id: UUID, step: StepRunRecord, key: str) -> StoredItem:
    try:
        return results.one_item(conn, execution_id, step, key)
    except results.UnknownItem as exc:
        raise ApiError(404, "item_not_found", str(exc)) from exc
