"""A small driver for engine tests: register pipelines, start executions,
run a worker until they settle, and read back what the store recorded."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from stageline.domain.config import PipelineConfig
from stageline.domain.status import EXECUTION_TERMINAL, ExecutionStatus, StageStatus
from stageline.engine.worker import Worker
from stageline.runtime import Runtime
from stageline.sdk.pipeline import Pipeline
from stageline.store import executions, lineage, pipelines
from stageline.store.executions import NewExecution
from stageline.store.items import StoredItem
from stageline.store.queue import ConfigLookup
from stageline.store.records import ExecutionRecord, LineageRecord, StepRunRecord
from stageline.store.stages import read_stage
from stageline.store.tables import messages

E = ExecutionStatus
# Statuses in which an execution waits for nobody but an operator.
SETTLED = frozenset(EXECUTION_TERMINAL | {E.IN_REVIEW, E.INTERRUPTED})
ALL_LINEAGE = 1_000_000


class Engine:
    """One runtime, its pipelines and one worker built from their handlers."""

    def __init__(self, runtime: Runtime) -> None:
        assert runtime.default_tenant is not None
        self.runtime = runtime
        self.tenant: UUID = runtime.default_tenant
        self._worker: Worker | None = None
        self._retired: list[Worker] = []

    # -- setup -----------------------------------------------------------

    def install(self, *loaded: Pipeline) -> None:
        """Make the pipelines' handlers known and register their configs."""
        for pipeline in loaded:
            self.runtime.handlers.update(pipeline.handlers)
        self.runtime.register(list(loaded))
        if self._worker is not None:  # a worker copies the handlers it is given
            self._retired.append(self._worker)
            self._worker = None

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            self._worker = self.runtime.worker()
        return self._worker

    def close(self) -> None:
        for worker in [*self._retired, *([self._worker] if self._worker else [])]:
            worker.stop()

    def start(self, pipeline: str, payload: Any, **options: Any) -> ExecutionRecord:
        record, _ = self.create(pipeline, payload, **options)
        return record

    def create(self, pipeline: str, payload: Any,
               **options: Any) -> tuple[ExecutionRecord, bool]:
        new = NewExecution(self.runtime.versions[pipeline], payload, **options)
        with self.runtime.db.write() as conn:
            return executions.create(conn, self.tenant, new, self.runtime.blobs,
                                     self.runtime.settings.inline_limit)

    # -- running ---------------------------------------------------------

    def drain(self, execution_id: UUID, timeout: float = 30.0) -> ExecutionRecord:
        """Work until the execution settles, waiting out retry back-offs."""
        deadline = time.monotonic() + timeout
        while True:
            self.worker.run_until_idle(timeout)
            record = self.execution(execution_id)
            if E(record.status) in SETTLED:
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"execution still {record.status} after {timeout} s")
            time.sleep(0.01)

    def configs(self, conn: Connection) -> ConfigLookup:
        def lookup(config_id: UUID) -> PipelineConfig:
            return pipelines.config_of(conn, config_id)

        return lookup

    # -- reading back ----------------------------------------------------

    def execution(self, execution_id: UUID) -> ExecutionRecord:
        with self.runtime.db.read() as conn:
            return executions.get(conn, self.tenant, execution_id)

    def steps(self, execution_id: UUID) -> dict[str, StepRunRecord]:
        with self.runtime.db.read() as conn:
            return {s.step_type: s for s in executions.steps_of(conn, execution_id)}

    def lineage(self, execution_id: UUID) -> list[LineageRecord]:
        with self.runtime.db.read() as conn:
            total, entries = lineage.for_execution(conn, execution_id, ALL_LINEAGE)
        assert total == len(entries)
        return entries

    def items(self, execution_id: UUID, stage: str) -> list[StoredItem]:
        with self.runtime.db.read() as conn:
            return read_stage(conn, execution_id, stage)

    def values(self, execution_id: UUID, stage: str) -> list[Any]:
        return [item.load(self.runtime.blobs) for item in self.items(execution_id, stage)]

    def message_statuses(self, execution_id: UUID) -> list[str]:
        with self.runtime.db.read() as conn:
            rows = conn.execute(select(messages.c.status)
                                .where(messages.c.execution_id == execution_id))
            return sorted(r.status for r in rows)


def by_correlation(entries: list[LineageRecord]) -> dict[str, list[LineageRecord]]:
    grouped: dict[str, list[LineageRecord]] = defaultdict(list)
    for entry in entries:
        grouped[entry.correlation_id].append(entry)
    return grouped


def with_status(entries: list[LineageRecord], status: StageStatus) -> list[LineageRecord]:
    return [e for e in entries if e.stage_status == status]


def only(entries: list[LineageRecord]) -> LineageRecord:
    assert len(entries) == 1, entries
    return entries[0]
