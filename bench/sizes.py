"""How big each workload is: tiny (CI), quick, full."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    name: str
    repeats: int
    w1_executions: int
    w2_executions: int
    w3_items: int
    w3_large_items: int | None  # the second size for RSS growth (--full only)
    w4_executions: int
    w4_entries_per_execution: int
    w4_requests: int
    idle_seconds: float
    client_threads: int = 8

    @property
    def w4_entries(self) -> int:
        return self.w4_executions * self.w4_entries_per_execution


TINY = Sizes("tiny", repeats=1, w1_executions=20, w2_executions=10, w3_items=200,
             w3_large_items=None, w4_executions=4, w4_entries_per_execution=500,
             w4_requests=10, idle_seconds=1.0, client_threads=4)
QUICK = Sizes("quick", repeats=3, w1_executions=1000, w2_executions=200, w3_items=10_000,
              w3_large_items=None, w4_executions=100, w4_entries_per_execution=1000,
              w4_requests=50, idle_seconds=10.0)
FULL = Sizes("full", repeats=3, w1_executions=1000, w2_executions=200, w3_items=10_000,
             w3_large_items=100_000, w4_executions=1000, w4_entries_per_execution=1000,
             w4_requests=100, idle_seconds=60.0)

BY_NAME = {s.name: s for s in (TINY, QUICK, FULL)}
