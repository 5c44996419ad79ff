"""The shared workload, defined once for Stageline and every peer (standard library only).

One execution is five chained steps; step k returns its input dict plus the
field `s<k>: k`. The input of execution i is `{"exec": i, "payload": <32 chars>}`.
"""

from __future__ import annotations

import hashlib
from typing import Any

STEPS = 5


def payload(i: int) -> str:
    """32 characters that differ per execution (JSON has no bytes, so hex text)."""
    return hashlib.sha256(str(i).encode()).hexdigest()[:32]


def input_of(i: int) -> dict[str, Any]:
    return {"exec": i, "payload": payload(i)}


def step(d: dict[str, Any], k: int) -> dict[str, Any]:
    return {**d, f"s{k}": k}


def expected_output(i: int) -> dict[str, Any]:
    d = input_of(i)
    for k in range(1, STEPS + 1):
        d = step(d, k)
    return d
