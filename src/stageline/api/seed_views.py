"""Records to the models of seed 003 (an execution polled for partial results)
and seed 001 (an execution seen by the source that started it), each in its
seed's vocabulary.

These functions read stage item bytes through `blobs` but never the
database: routes read the records in one short transaction first.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from stageline.domain.items import JSON_TYPE
from stageline.domain.status import ExecutionStatus, StepStatus
from stageline.domain.vocab import SEED_001, SEED_001_STEP, SEED_003, SEED_003_STEP
from stageline.schemas.pipeline_views import (
    PipelineExecutionResponse,
    PipelineExecutionStepResponse,
    StepResultItem,
    StepResultPage,
)
from stageline.schemas.sources import (
    DecisionAuthor,
    Operation,
    OperationInput,
    OperationTarget,
    PipelineExecution,
    PipelineExecutionDecision,
    PipelineExecutionError,
    PipelineExecutionStep,
    SourceResponse,
)
from stageline.storage.blobs import BlobStore
from stageline.store.items import StoredItem
from stageline.store.pipelines import Version
from stageline.store.records import ExecutionRecord, LineageRecord, StepRunRecord
from stageline.store.results import ExecutionOutputs, StepOutput, has_output, lookup_key
from stageline.store.sources import SourceRecord

# Execution fields that `input_config.options` reports when they are set.
OPTIONS = ("tag", "idempotency_key", "run_timeout_seconds", "skip_cache", "source_key",
           "parent_execution_id", "replay_source", "replay_request", "batch_id",
           "deployment_id", "session_id", "user_id", "step_key", "output_schema_name")
OPERATION_KEYS = frozenset({"action", "target", "body"})
# The error type of a failed step, from the type of its first failure.
ERROR_KINDS: dict[str, tuple[int, str]] = {
    "Fatal": (400, "INVALID_ARGUMENT"),
    "TimeoutError": (504, "DEADLINE_EXCEEDED"),
    "LeaseExpired": (503, "UNAVAILABLE"),
    "Interrupted": (503, "UNAVAILABLE"),
}
INTERNAL_ERROR = (500, "INTERNAL")


def result_url(execution_id: UUID, step_index: int) -> str:
    return f"/api/v1/pipelines/executions/{execution_id}/steps/{step_index}/result"


# -- seed 003 -------------------------------------------------------------------


def pipeline_execution(rec: ExecutionRecord, version: Version,
                       steps: list[StepRunRecord]) -> PipelineExecutionResponse:
    return PipelineExecutionResponse(
        execution_id=str(rec.id), pipeline_id=str(version.pipeline_id),
        pipeline_version=version.version, status=SEED_003[ExecutionStatus(rec.status)],
        steps=[pipeline_step(rec.id, s) for s in steps], started_at=rec.started_at,
        completed_at=rec.completed_at, created=rec.created_at,
        config_snapshot=version.snapshot, input_config=input_config(rec),
        rate_breakdown=rate_breakdown(steps),
    )


def pipeline_step(execution_id: UUID, step: StepRunRecord) -> PipelineExecutionStepResponse:
    found = has_output(step)
    return PipelineExecutionStepResponse(
        step_index=step.step_index, step_type=step.step_type,
        status=SEED_003_STEP[StepStatus(step.status)],
        lookup_key=lookup_key(execution_id, step),
        result_url=result_url(execution_id, step.step_index) if found else None,
        started_at=step.started_at, finished_at=step.finished_at,
        error_message=step.error_message, source_step_type=step.source_step_type,
        checkpoint_id=step.checkpoint_id,
    )


def input_config(rec: ExecutionRecord) -> dict[str, Any]:
    """What the execution was started with: input payload, metadata and options."""
    options = {name: _plain(getattr(rec, name)) for name in OPTIONS
               if getattr(rec, name) is not None}
    return {"input": rec.payload, "metadata": rec.meta, "options": options}


def rate_breakdown(steps: list[StepRunRecord]) -> dict[str, Any]:
    """What the run cost: items, attempts and handler seconds, per step and in all."""
    rows = [{"step_index": s.step_index, "step_type": s.step_type, **_cost(s)} for s in steps]
    total = {
        "items_completed": sum(s.completed for s in steps),
        "items_failed": sum(s.failed for s in steps),
        "attempts": sum(s.attempts for s in steps),
        "handler_seconds": round(sum(s.handler_seconds for s in steps), 6),
    }
    return {"steps": rows, "total": total}


def _cost(step: StepRunRecord) -> dict[str, Any]:
    return {"items_completed": step.completed, "items_failed": step.failed,
            "attempts": step.attempts, "handler_seconds": round(step.handler_seconds, 6)}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, UUID) else value


def result_page(execution_id: UUID, step: StepRunRecord, items: list[StoredItem], more: bool,
                blobs: BlobStore) -> StepResultPage:
    return StepResultPage(
        execution_id=str(execution_id), step_index=step.step_index, step_type=step.step_type,
        stage=step.output_stage, status=SEED_003_STEP[StepStatus(step.status)],
        lookup_key=lookup_key(execution_id, step),
        items=[result_item(item, blobs) for item in items],
        next_cursor=items[-1].key if more and items else None,
    )


def result_item(item: StoredItem, blobs: BlobStore) -> StepResultItem:
    """One item with its decoded value; bytes items travel as base64 text."""
    if item.content_type == JSON_TYPE:
        value, encoding = item.load(blobs), "json"
    else:
        value, encoding = base64.b64encode(item.raw(blobs)).decode(), "base64"
    return StepResultItem(
        key=item.key, content_type=item.content_type, size=item.size,
        content_hash=item.content_hash, correlation_id=item.correlation_id,
        created_at=item.created_at, value=value, encoding=encoding,
    )


# -- sources and seed 001 ---------------------------------------------------------


def source_response(source: SourceRecord) -> SourceResponse:
    return SourceResponse(key=source.key, pipeline=source.pipeline,
                          pipeline_id=str(source.pipeline_id), created_at=source.created_at,
                          executions_url=f"/sources/{source.key}/v1/pipelines/executions")


def seed_001_statuses(names: list[str]) -> list[str]:
    """The execution statuses that seed 001 shows as one of `names`."""
    return sorted(str(status) for status, name in SEED_001.items() if name in names)


def looks_like_operation(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() >= OPERATION_KEYS


def as_operation(value: Any) -> OperationInput | None:
    """`value` as an operation, when it is shaped like one."""
    if not looks_like_operation(value):
        return None
    try:
        return OperationInput.model_validate(value)
    except ValidationError:
        return None


def source_execution(rec: ExecutionRecord, source: SourceRecord, outputs: ExecutionOutputs,
                     blobs: BlobStore, with_body: bool) -> PipelineExecution:
    trigger = triggering_operation(rec, source)
    return PipelineExecution(
        id=str(rec.id), pipelineDefinitionId=str(rec.config_id),
        status=SEED_001[ExecutionStatus(rec.status)],
        steps=[source_step(s, outputs.failures.get(s.step_index, [])) for s in outputs.steps],
        operation=render_operation(trigger, with_body),
        processedOperation=processed_operation(rec.id, trigger, outputs.last, blobs, with_body),
        createdAt=rec.created_at, updatedAt=rec.updated_at,
    )


def triggering_operation(rec: ExecutionRecord, source: SourceRecord) -> OperationInput:
    """The input itself when it is an operation; else a CREATE of it through the source."""
    given = as_operation(rec.payload)
    if given is not None:
        return given.model_copy(update={"taskId": given.taskId or str(rec.id)})
    target = OperationTarget(targetType="SOURCE", id=source.key, type=source.pipeline)
    return OperationInput(taskId=str(rec.id), action="CREATE", target=target, body=rec.payload)


def render_operation(op: OperationInput, with_body: bool) -> Operation:
    """The response form; without the body unless asked (the field is then absent)."""
    if with_body:
        return Operation(taskId=op.taskId or "", action=op.action, target=op.target,
                         body=op.body)
    return Operation(taskId=op.taskId or "", action=op.action, target=op.target)


def processed_operation(execution_id: UUID, trigger: OperationInput, last: StepOutput | None,
                        blobs: BlobStore, with_body: bool) -> Operation | None:
    """The output of the last completed step, as an operation.

    A single output item shaped like an operation is that operation; any
    other output is the body of the triggering operation. Several items are
    the body as a list, or as a pointer to the step's result when there are
    more than were read.
    """
    if last is None:
        return None
    if last.total == 1 and last.items:
        value = last.items[0].load(blobs)
        produced = as_operation(value)
        if produced is not None:
            return render_operation(
                produced.model_copy(update={"taskId": produced.taskId or trigger.taskId}),
                with_body)
        return render_operation(trigger.model_copy(update={"body": value}), with_body)
    if not with_body:
        return render_operation(trigger, False)
    body = _many_items(execution_id, last, blobs)
    return render_operation(trigger.model_copy(update={"body": body}), True)


def _many_items(execution_id: UUID, last: StepOutput, blobs: BlobStore) -> Any:
    if last.total > len(last.items):
        return {"stage": last.step.output_stage, "items": last.total,
                "result_url": result_url(execution_id, last.step.step_index)}
    return [item.load(blobs) for item in last.items]


def source_step(step: StepRunRecord, failures: list[LineageRecord]) -> PipelineExecutionStep:
    processed = step.completed or step.failed or step.status == StepStatus.SKIPPED
    return PipelineExecutionStep(
        status=SEED_001_STEP[StepStatus(step.status)], error=step_error(step, failures),
        decision=decision(step.decision),
        processedAt=step.finished_at if processed else None,
    )


def step_error(step: StepRunRecord,
               failures: list[LineageRecord]) -> PipelineExecutionError | None:
    """A failed step's error: typed by its first failure, one detail per failed item."""
    if step.status != StepStatus.FAILED:
        return None
    first = (failures[0].error_info or {}) if failures else {}
    code, kind = ERROR_KINDS.get(str(first.get("type")), INTERNAL_ERROR)
    message = step.error_message or str(first.get("message") or "the step failed")
    return PipelineExecutionError(code=code, message=message, type=kind,
                                  details=[_failure_detail(f) for f in failures])


def _failure_detail(entry: LineageRecord) -> dict[str, Any]:
    info = entry.error_info or {}
    return {"correlationId": entry.correlation_id, "itemKey": entry.item_key,
            "type": info.get("type"), "message": info.get("message"),
            "adapterName": entry.adapter_name, "attempt": entry.attempt}


def decision(raw: dict[str, Any] | None) -> PipelineExecutionDecision | None:
    """A review decision as recorded by `POST /api/v1/executions/{id}/actions`."""
    if not isinstance(raw, dict):
        return None
    description = raw.get("description")
    return PipelineExecutionDecision(
        id=str(raw.get("id") or ""),
        description=None if description is None else str(description),
        author=_author(raw.get("author")), actedAt=_timestamp(raw.get("acted_at")),
    )


def _author(raw: Any) -> DecisionAuthor:
    if isinstance(raw, dict):
        return DecisionAuthor(id=_text(raw.get("id")), email=_text(raw.get("email")))
    if isinstance(raw, str):  # a bare name or address
        return DecisionAuthor(id=raw, email=raw if "@" in raw else None)
    return DecisionAuthor()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
