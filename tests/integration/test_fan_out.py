"""A 1,000-item fan-out through map -> fan_out -> map -> collect, checked item by
item: stage contents, step counters and the lineage of every item."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from engine_driver import Engine, by_correlation, only, with_status

from stageline import Pipeline
from stageline.adapters.registry import adapter_name
from stageline.domain.status import ExecutionStatus, StageStatus, StepStatus
from stageline.store.items import StoredItem
from stageline.store.records import LineageRecord

N = 1000
STAGES = ["input", "document", "chunks", "vectors", "index"]


def fetch(request: dict[str, Any]) -> dict[str, Any]:
    return {"doc": request["doc"], "size": request["size"]}


def segment(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"doc": document["doc"], "i": i, "text": f"chunk {i}"}
            for i in range(document["size"])]


def embed(chunk: dict[str, Any]) -> dict[str, Any]:
    return {"i": chunk["i"], "vector": [chunk["i"], chunk["i"] * 2]}


def index(vectors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(vectors), "order": [v["i"] for v in vectors]}


def ingest() -> Pipeline:
    p = Pipeline("ingest")
    p.step(output="document")(fetch)
    p.step(output="chunks", fan_out=True)(segment)
    p.step(output="vectors")(embed)
    p.step(output="index", collect=True)(index)
    return p


PRODUCERS: dict[str, tuple[str, Callable[..., Any]]] = {
    "document": ("input", fetch), "chunks": ("document", segment),
    "vectors": ("chunks", embed), "index": ("vectors", index)}


def test_thousand_items_complete_with_full_lineage(engine: Engine) -> None:
    engine.install(ingest())
    execution = engine.start("ingest", {"doc": "d1", "size": N})

    record = engine.drain(execution.id, timeout=60)

    assert record.status == ExecutionStatus.COMPLETED
    stages = {stage: engine.items(record.id, stage) for stage in STAGES}
    _check_stages(engine, stages)
    _check_steps(engine, record.id)
    _check_lineage(engine.lineage(record.id), stages)


def _check_stages(engine: Engine, stages: dict[str, list[StoredItem]]) -> None:
    keys = [f"0/{i:05d}" for i in range(N)]
    assert [len(stages[s]) for s in STAGES] == [1, 1, N, N, 1]
    assert [i.key for i in stages["chunks"]] == keys
    assert [i.key for i in stages["vectors"]] == keys
    assert [i.key for i in stages["index"]] == ["all"]
    blobs = engine.runtime.blobs
    assert stages["document"][0].load(blobs) == {"doc": "d1", "size": N}
    assert [i.load(blobs) for i in stages["chunks"]] == [
        {"doc": "d1", "i": i, "text": f"chunk {i}"} for i in range(N)]
    assert [i.load(blobs) for i in stages["vectors"]] == [
        {"i": i, "vector": [i, 2 * i]} for i in range(N)]
    # The collect step saw every item, in key order.
    assert stages["index"][0].load(blobs) == {"count": N, "order": list(range(N))}


def _check_steps(engine: Engine, execution_id: Any) -> None:
    steps = engine.steps(execution_id)
    assert list(steps) == ["fetch", "segment", "embed", "index"]
    assert {s.status for s in steps.values()} == {StepStatus.COMPLETED}
    assert [(s.completed, s.failed, s.outstanding) for s in steps.values()] == [
        (1, 0, 0), (1, 0, 0), (N, 0, 0), (1, 0, 0)]


def _check_lineage(entries: list[LineageRecord], stages: dict[str, list[StoredItem]]) -> None:
    assert {e.stage_status for e in entries} == {StageStatus.INITIATED, StageStatus.COMPLETED}
    assert len(entries) == 1 + 1 + 1 + N + 1
    grouped = by_correlation(entries)
    root = only(with_status(entries, StageStatus.INITIATED))
    assert (root.stage_name, root.correlation_id) == ("input", stages["input"][0].correlation_id)
    assert root.stage_input_hash == stages["input"][0].content_hash
    for stage, (input_stage, handler) in PRODUCERS.items():
        inputs = {item.key: item for item in stages[input_stage]}
        for item in stages[stage]:
            assert item.correlation_id is not None
            entry = only([e for e in with_status(grouped[item.correlation_id],
                                                 StageStatus.COMPLETED)
                          if e.stage_name == stage])
            assert entry.adapter_name == adapter_name(handler)
            assert entry.adapter_index == 0
            assert entry.duration_ms is not None and entry.duration_ms >= 0
            assert entry.completed_at is not None
            if stage == "index":
                # A collect has every item of its stage as input, and no single
                # parent to chain back through.
                assert entry.stage_input_hash == _collect_hash(stages[input_stage])
                continue
            # A message's item_key is the key of its input item.
            assert entry.item_key is not None
            assert entry.stage_input_hash == inputs[entry.item_key].content_hash
            assert _root_of(entry, grouped) == root


def _collect_hash(found: list[StoredItem]) -> str:
    joined = "\n".join(i.content_hash for i in found).encode()
    return "sha256:" + hashlib.sha256(joined).hexdigest()


def _root_of(entry: LineageRecord,
             grouped: dict[str, list[LineageRecord]]) -> LineageRecord:
    """Follow parent_correlation_id up to the entry stage's 'initiated' entry."""
    for _ in range(len(STAGES)):
        if entry.stage_status == StageStatus.INITIATED:
            return entry
        assert entry.parent_correlation_id is not None, entry
        parents = [e for e in grouped[entry.parent_correlation_id]
                   if e.stage_status in (StageStatus.COMPLETED, StageStatus.INITIATED)]
        entry = only(parents)
    raise AssertionError("lineage chain does not end at the entry stage")
