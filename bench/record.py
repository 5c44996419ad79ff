"""One measurement: what ran, what it measured, and what was checked. One JSON line each."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    system: str  # stageline, dbos, celery, procrastinate
    config: str  # sqlite, sqlite-strict, postgresql, redis
    workload: str  # W1 ... W5, idle
    repeat: int
    metrics: dict[str, float]
    checks: dict[str, Any] = field(default_factory=dict)  # expected vs found, per check
    ok: bool = True  # every output right and every durable record counted
    peak_rss_mb: float | None = None
    cpu_ms_per_execution: float | None = None
    size: dict[str, int] = field(default_factory=dict)
    notes: str = ""
    run_id: str = ""
    # How busy the machine was: the CPU fraction in use just before the run
    # (by anything), and the 1-minute load average at its start and end.
    machine: dict[str, float] = field(default_factory=dict)
    source: str = ""  # digest of src/stageline when the repeat started

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def check(checks: dict[str, Any], name: str, expected: Any, found: Any) -> bool:
    """Record one check; True when it holds."""
    checks[name] = {"expected": expected, "found": found}
    return bool(expected == found)


def all_hold(checks: dict[str, Any]) -> bool:
    return all(c["expected"] == c["found"] for c in checks.values())


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in (0, 100]."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int


def spread(values: list[float]) -> Spread:
    return Spread(statistics.median(values), min(values), max(values), len(values))


def append(path: Path, measurements: list[Measurement]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        for m in measurements:
            out.write(m.to_json() + "\n")


def load(path: Path) -> list[Measurement]:
    return [Measurement.from_dict(json.loads(line))
            for line in path.read_text().splitlines() if line.strip()]
