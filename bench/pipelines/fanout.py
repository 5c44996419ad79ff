"""W3 and W5: one document fans out to N items, two steps per item, one collect."""

from __future__ import annotations

from typing import Any

from stageline import Pipeline

pipeline = Pipeline("fanout", description="benchmark: 1 -> N items -> 2 per-item steps -> collect")


@pipeline.step(output="items", fan_out=True)
def split(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"doc": doc["doc"], "i": i} for i in range(doc["n"])]


@pipeline.step(output="enriched")
def enrich(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "a": 1}


@pipeline.step(output="scored")
def score(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "b": item["i"] % 7}


@pipeline.step(output="summary", collect=True)
def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(items), "a": sum(d["a"] for d in items),
            "b": sum(d["b"] for d in items), "i": sum(d["i"] for d in items)}
