"""Reuse by input hash: `cache=True` steps skip the handler for an input seen before."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from engine_driver import Engine

from stageline import Pipeline
from stageline.runtime import Runtime
from stageline.store import executions, lineage
from stageline.store.executions import NewExecution
from stageline.store.records import ExecutionRecord

CALLS: list[str] = []


def build(factor: int = 2) -> Pipeline:
    p = Pipeline("cached")

    @p.step(output="parts", fan_out=True)
    def split(doc: dict[str, Any]) -> list[str]:
        return doc["text"].split()

    @p.step(output="embedded", cache=True, adapters=[("stageline_test_scale", {"f": factor})])
    def embed(scaled: list[int]) -> list[int]:
        return scaled

    @p.step(output="total", collect=True)
    def total(vectors: list[list[int]]) -> int:
        return sum(v[0] for v in vectors)

    return p


def _scale(word: str, f: int) -> list[int]:
    CALLS.append(word)
    return [len(word) * f]


def run(runtime: Runtime, pipeline: Pipeline, text: str, skip_cache: bool = False
        ) -> ExecutionRecord:
    from stageline.adapters.registry import adapter

    adapter("stageline_test_scale")(_scale)
    runtime.handlers.update(pipeline.handlers)
    runtime.register([pipeline])
    assert runtime.default_tenant is not None
    with runtime.db.write() as conn:
        record, _ = executions.create(conn, runtime.default_tenant, NewExecution(
            runtime.versions[pipeline.name], {"text": text}, skip_cache=skip_cache),
            runtime.blobs, runtime.settings.inline_limit)
    return finish(runtime, record.id)


def finish(runtime: Runtime, execution_id: UUID) -> ExecutionRecord:
    return Engine(runtime).drain(execution_id)


def test_second_run_reuses_outputs_and_says_so(runtime: Runtime) -> None:
    CALLS.clear()
    first = run(runtime, build(), "alpha beta gamma")
    assert first.result == 2 * (5 + 4 + 5) and len(CALLS) == 3
    second = run(runtime, build(), "gamma alpha delta")
    assert second.result == 2 * (5 + 5 + 5)
    assert CALLS[3:] == ["delta"]  # only the new word ran
    with runtime.db.read() as conn:
        _, entries = lineage.for_execution(conn, second.id, 1000)
    hits = [e for e in entries if e.route_id == "embed" and (e.meta or {}).get("cache_hit")]
    assert len(hits) == 2
    assert {h.meta["cache_source"]["execution_id"] for h in hits if h.meta} == {str(first.id)}


def test_changed_parameters_or_skip_cache_recompute(runtime: Runtime) -> None:
    CALLS.clear()
    run(runtime, build(), "one two")
    run(runtime, build(factor=3), "one two")  # new params: a different cache key
    assert len(CALLS) == 4
    forced = run(runtime, build(), "one two", skip_cache=True)
    assert len(CALLS) == 6 and forced.result == 2 * (3 + 3)
