"""The README's example: split text into lines, count words per line, add them up."""

from __future__ import annotations

from stageline import Pipeline

pipeline = Pipeline("words")


@pipeline.step(output="lines", fan_out=True)
def split(doc: dict[str, str]) -> list[str]:
    return doc["text"].splitlines()


@pipeline.step(output="counted", retries=3)
def count(line: str) -> dict[str, object]:
    return {"line": line, "words": len(line.split())}


@pipeline.step(output="total", collect=True)
def total(rows: list[dict[str, int]]) -> int:
    return sum(r["words"] for r in rows)
