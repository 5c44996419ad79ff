"""Starts that arrive together share one transaction (`store.starts.StartQueue`),
and one bad start in a group fails alone."""

from __future__ import annotations

import threading
import time
from typing import Any

from engine_driver import Engine
from sqlalchemy import func, select

from stageline.sdk.pipeline import Pipeline
from stageline.store import executions
from stageline.store.executions import NewExecution, TagInUse
from stageline.store.records import ExecutionRecord
from stageline.store.tables import executions as executions_table
from stageline.store.tables import messages

echo = Pipeline("group_echo")


@echo.step(output="out")
def repeat(value: dict[str, Any]) -> dict[str, Any]:
    return value


def _count(engine: Engine, table: Any) -> int:
    with engine.runtime.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _start_together(engine: Engine, news: list[NewExecution]
                    ) -> list[tuple[ExecutionRecord, bool] | BaseException]:
    """Every start queued before any is written, so they form one group."""
    starts = engine.runtime.starts
    answers: list[tuple[ExecutionRecord, bool] | BaseException | None] = [None] * len(news)

    def run(i: int) -> None:
        prepared = executions.prepare(engine.tenant, news[i], engine.runtime.blobs,
                                      engine.runtime.settings.inline_limit)
        try:
            answers[i] = starts.start(prepared)
        except BaseException as exc:
            answers[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(news))]
    with starts._combiner:  # hold the door until every start is queued
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(starts._pending) < len(news) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(starts._pending) == len(news)
    for t in threads:
        t.join(10)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def test_starts_queued_together_are_all_written(engine: Engine) -> None:
    engine.install(echo)
    version = engine.runtime.versions["group_echo"]

    answers = _start_together(engine, [NewExecution(version, {"n": i}) for i in range(12)])

    records = [a for a in answers if isinstance(a, tuple)]
    assert len(records) == 12 and all(created for _, created in records)
    assert _count(engine, executions_table) == 12
    assert _count(engine, messages) == 12
    for record, _ in records:
        assert engine.drain(record.id).result == {"n": record.payload["n"]}


def test_a_bad_start_in_a_group_fails_alone(engine: Engine) -> None:
    engine.install(echo)
    version = engine.runtime.versions["group_echo"]
    news = [NewExecution(version, {"n": i}) for i in range(6)]
    news += [NewExecution(version, {"tagged": i}, tag="only-once") for i in range(3)]
    news += [NewExecution(version, {"keyed": i}, idempotency_key="k1") for i in range(3)]

    answers = _start_together(engine, news)

    plain, tagged, keyed = answers[:6], answers[6:9], answers[9:]
    assert all(isinstance(a, tuple) and a[1] for a in plain)
    assert sum(isinstance(a, tuple) for a in tagged) == 1
    assert all(isinstance(a, TagInUse) for a in tagged if not isinstance(a, tuple))
    keyed_records = [a for a in keyed if isinstance(a, tuple)]
    assert len(keyed_records) == 3  # the same execution, created once
    assert len({r.id for r, _ in keyed_records}) == 1
    assert sum(created for _, created in keyed_records) == 1
    assert _count(engine, executions_table) == 6 + 1 + 1
    assert _count(engine, messages) == 8
