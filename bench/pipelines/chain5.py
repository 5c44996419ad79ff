"""W1 and W2: five chained steps, each adding one small field to its input dict."""

from __future__ import annotations

from typing import Any

from stageline import Pipeline

pipeline = Pipeline("chain5", description="benchmark: 5 chained steps")


@pipeline.step(output="s1")
def s1(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "s1": 1}


@pipeline.step(output="s2")
def s2(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "s2": 2}


@pipeline.step(output="s3")
def s3(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "s3": 3}


@pipeline.step(output="s4")
def s4(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "s4": 4}


@pipeline.step(output="s5")
def s5(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "s5": 5}
