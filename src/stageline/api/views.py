"""Records to response models, each in its seed's vocabulary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stageline.domain.status import ExecutionStatus
from stageline.domain.vocab import SEED_002, SEED_004
from stageline.schemas.executions import ExecutionDetail, ExecutionResponse, StepCounts
from stageline.schemas.lineage import LineageEntryResponse
from stageline.schemas.replay import (
    PlannedStepResponse,
    ReplayFinding,
    ReplayPlanResponse,
    ReusedStageResponse,
)
from stageline.store.pipelines import Version
from stageline.store.records import ExecutionRecord, LineageRecord, StepRunRecord
from stageline.store.replay import ReplayOutcome, ReplayRequest


def rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _str(value: object | None) -> str | None:
    return None if value is None else str(value)


def execution_detail(rec: ExecutionRecord, version: Version, steps: list[StepRunRecord],
                     with_snapshot: bool = True) -> ExecutionDetail:
    status = ExecutionStatus(rec.status)
    return ExecutionDetail(
        created_at=rfc3339(rec.created_at) or "", id=str(rec.id), payload=rec.payload,
        retry_count=rec.retry_count, status=SEED_004[status], workflow_id=version.pipeline,
        assigned_to_worker=rec.assigned_to_worker, batch_id=rec.batch_id,
        cancelled_at=rfc3339(rec.cancelled_at), cancelled_by=rec.cancelled_by,
        completed_at=rfc3339(rec.completed_at), concurrency_key=rec.concurrency_key,
        deployment_id=rec.deployment_id, error=rec.error,
        output_schema_name=rec.output_schema_name,
        parent_execution_id=_str(rec.parent_execution_id), queue_name=rec.queue_name,
        result=rec.result, root_execution_id=_str(rec.root_execution_id),
        run_timeout_seconds=rec.run_timeout_seconds, session_id=rec.session_id,
        started_at=rfc3339(rec.started_at), step_key=rec.step_key, user_id=rec.user_id,
        config_id=str(rec.config_id), replay_source=rec.replay_source,
        tag=rec.tag, stageline_status=rec.status, pipeline=version.pipeline,
        pipeline_version=version.version, metadata=rec.meta,
        config_snapshot=version.snapshot if with_snapshot else None,
        error_info=rec.error_info,
        steps=[StepCounts(step_index=s.step_index, step_type=s.step_type, status=s.status,
                          outstanding=s.outstanding, completed=s.completed, failed=s.failed,
                          attempts=s.attempts) for s in steps],
    )


def execution_response(rec: ExecutionRecord) -> ExecutionResponse:
    """Seed 002's ExecutionResponse; `started_at` is required there, so a run
    that has not started yet reports its creation time."""
    return ExecutionResponse(
        id=rec.id, config_id=rec.config_id,
        status=SEED_002[ExecutionStatus(rec.status)],
        started_at=rec.started_at or rec.created_at, completed_at=rec.completed_at,
        parent_execution_id=rec.parent_execution_id,
        replay_source=rec.replay_source,
        tag=rec.tag,
    )


def lineage_entry_fields(rec: LineageRecord) -> dict[str, Any]:
    """Seed 000's LineageEntryResponse of a record as plain values, in the model's
    order: also what the lineage routes serialise without building models."""
    return {
        "id": rec.id, "correlation_id": rec.correlation_id,
        "parent_correlation_id": rec.parent_correlation_id,
        "replay_batch_id": rec.replay_batch_id, "execution_id": rec.execution_id,
        "route_id": rec.route_id, "adapter_name": rec.adapter_name,
        "adapter_index": rec.adapter_index, "stage_name": rec.stage_name,
        "stage_status": rec.stage_status, "stage_input_hash": rec.stage_input_hash,
        "started_at": rec.started_at, "completed_at": rec.completed_at,
        "duration_ms": rec.duration_ms,
        "metadata": {"item_key": rec.item_key, "attempt": rec.attempt, **(rec.meta or {})},
        "error_info": rec.error_info,
    }


def lineage_entry(rec: LineageRecord) -> LineageEntryResponse:
    # Built from our own rows, which already fit the model: no need to validate
    # them again (a page holds up to 10,000 entries).
    return LineageEntryResponse.trusted(lineage_entry_fields(rec))


def replay_plan_response(parent: ExecutionRecord, child: Version, req: ReplayRequest,
                         outcome: ReplayOutcome) -> ReplayPlanResponse:
    plan = outcome.plan
    return ReplayPlanResponse(
        fits=not outcome.findings,
        findings=[ReplayFinding(code=c, message=m) for c, m in outcome.findings],
        parent_execution_id=parent.id, config_id=child.config_id,
        replay_source=req.source.value, from_stage=req.from_stage, to_route=req.to_route,
        items=outcome.selection.count,
        reused_stages=[] if plan is None else [
            ReusedStageResponse(stage=r.stage, mode=r.mode.value,
                                source_step_type=r.source_step, source_execution_id=parent.id)
            for r in plan.reused],
        steps=[] if plan is None else [PlannedStepResponse(
            step_index=i, step_type=s.name,
            action="skip" if i in plan.skip_steps else "run",
            items=outcome.selection.count if i == plan.to_route_index else None)
            for i, s in enumerate(child.config.steps)],
    )
