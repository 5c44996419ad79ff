"""The benchmark harness at tiny sizes: every Stageline workload runs over real
HTTP on the suite's backend, every output and durable record count is checked,
and the raw JSON lines are written. Times are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BACKEND = os.environ.get("STAGELINE_TEST_DB", "sqlite")


@pytest.mark.timeout(600)
def test_tiny_run_checks_outputs_and_records(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--no-peers",
         "--sizes", "tiny", "--configs", BACKEND, "--raw-dir", str(raw), "--no-doc",
         "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=580, cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    files = list(raw.glob("*-tiny.jsonl"))
    assert len(files) == 1
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]

    assert sorted(m["workload"] for m in lines) == ["W1", "W2", "W3", "W4", "W5", "idle"]
    for m in lines:
        assert (m["system"], m["config"]) == ("stageline", BACKEND)
        assert m["ok"], m
        assert m["metrics"], m
        for name, c in m["checks"].items():
            assert c["expected"] == c["found"], (m["workload"], name, c)
    _expected_counts({m["workload"]: m for m in lines})


def _expected_counts(by_workload: dict[str, dict[str, Any]]) -> None:
    """Pin the counts themselves, so the harness cannot pass by expecting what it found."""
    w1 = by_workload["W1"]
    n = w1["size"]["executions"]
    assert w1["checks"]["outputs_correct"]["found"] == n
    assert w1["checks"]["stage_items"]["found"] == 6 * n  # input + 5 steps
    assert w1["checks"]["lineage_completed"]["found"] == 5 * n
    w3 = by_workload["W3"]
    items = w3["size"]["items"]
    assert w3["checks"]["result"]["found"]["count"] == items
    assert w3["checks"]["stage_items"]["found"] == 3 * items + 2
    w5 = by_workload["W5"]["checks"]
    assert w5["last_step_child_items"]["found"] == {"summary": 1}
    assert w5["stage_items_added"]["found"] == items + 2
    w4 = by_workload["W4"]["checks"]
    assert {"page_responses_correct", "chain_responses_correct",
            "filter_responses_correct"} <= set(w4)
