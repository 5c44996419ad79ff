"""GET /api/v1/executions/{id}/stats, /dag and /events (server-sent events) over real
HTTP against `stageline serve`, with API keys for two tenants.

Each test starts a server, so the checks are grouped into few tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stageline.runtime import Runtime
from stageline.store import tenants
from tests.acceptance.conftest import Server, start_server, wait_for_status

CHUNKS = 4
NAPS = 4
PIPELINES = '''
import time

from stageline import Fatal, Pipeline

docs = Pipeline("docs")


@docs.step(output="document")
def fetch(request):
    return request


@docs.step(output="chunks", fan_out=True)
def segment(document):
    return [{"i": i} for i in range(document["chunks"])]


@docs.step(output="vectors")
def embed(chunk):
    if chunk["i"] == 2:
        raise Fatal("chunk 2 cannot be embedded")
    return [chunk["i"]]


slow = Pipeline("slow")


@slow.step(output="naps", fan_out=True)
def split(n):
    return list(range(n))


@slow.step(output="rested")
def nap(i):
    time.sleep(1.0)
    return i


@slow.step(output="total", collect=True)
def total(values):
    return sum(values)
'''
Event = tuple[str, dict[str, Any]]


@dataclass
class Clients:
    mine: httpx.Client
    theirs: httpx.Client


@pytest.fixture
def clients(runtime: Runtime, db_url: str, tmp_path: Path) -> Iterator[Clients]:
    """A server whose default tenant runs `docs` and `slow`; another tenant owns nothing."""
    with runtime.db.write() as conn:  # before the server starts: it caches "no keys yet"
        mine, _ = tenants.create_key(conn, "default", "tests")
        theirs, _ = tenants.create_key(conn, "other", "tests")
    pipelines = tmp_path / "monitored_pipelines.py"
    pipelines.write_text(PIPELINES)
    server: Server = start_server(pipelines, db_url, str(tmp_path / "data"),
                                  tmp_path / "server.log")
    try:
        with server.client(mine) as a, server.client(theirs) as b:
            yield Clients(a, b)
    finally:
        server.stop()


def start(client: httpx.Client, pipeline: str, payload: Any, tag: str) -> str:
    created = client.post("/api/v1/executions",
                          json={"pipeline": pipeline, "input": payload, "tag": tag})
    assert created.status_code == 201, created.text
    execution_id: str = created.json()["id"]
    return execution_id


def read_events(client: httpx.Client, execution_id: str) -> list[Event]:
    """Every event of the stream, until the server closes it."""
    events: list[Event] = []
    kind, data = "message", []
    with client.stream("GET", f"/api/v1/executions/{execution_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").strip())
            elif not line and data:
                events.append((kind, json.loads("\n".join(data))))
                kind, data = "message", []
    return events


def test_stats_dag_and_events_of_a_finished_execution(clients: Clients) -> None:
    execution_id = start(clients.mine, "docs", {"chunks": CHUNKS}, "run-1")
    wait_for_status(clients.mine, execution_id, {"completed_with_errors"})
    _stats(clients.mine, execution_id)
    _dag(clients.mine, execution_id)
    _events_of_a_finished_execution(clients.mine, execution_id)
    _unknown_and_foreign_ids_answer_404(clients, execution_id)
    _openapi_describes_the_monitoring_routes(clients.mine)


def _stats(client: httpx.Client, execution_id: str) -> None:
    response = client.get("/api/v1/executions/run-1/stats")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["execution_id"], body["status"]) == (execution_id, "completed_with_errors")
    steps = {s["route_id"]: s for s in body["steps"]}
    assert list(steps) == ["fetch", "segment", "embed"]
    embed = steps["embed"]
    assert embed["counts"] == {"pending": 0, "initiated": 0, "processing": 0,
                               "completed": CHUNKS - 1, "failed": 1, "cancelled": 0}
    assert embed["status"] == "failed"  # a step with an item failed for good
    assert [(a["adapter_index"], a["adapter_name"].endswith(":embed"))
            for a in embed["adapters"]] == [(0, True)]
    assert embed["avg_duration_ms"] >= 0 and embed["p95_duration_ms"] >= 0
    assert embed["span_seconds"] > 0
    assert embed["completed_per_second"] == pytest.approx(
        (CHUNKS - 1) / embed["span_seconds"])
    assert steps["fetch"]["counts"]["completed"] == 1


def _dag(client: httpx.Client, execution_id: str) -> None:
    response = client.get(f"/api/v1/executions/{execution_id}/dag")
    assert response.status_code == 200, response.text
    body = response.json()
    stages = {n["name"]: n["items"] for n in body["nodes"] if n["kind"] == "stage"}
    assert stages == {"input": 1, "document": 1, "chunks": CHUNKS, "vectors": CHUNKS - 1}
    steps = {n["name"]: n for n in body["nodes"] if n["kind"] == "step"}
    assert [(s["step_index"], s["status"], s["fan_out"]) for s in steps.values()] == [
        (0, "completed", False), (1, "completed", True), (2, "failed", False)]
    assert (steps["embed"]["completed"], steps["embed"]["failed"]) == (CHUNKS - 1, 1)
    assert [(e["source"], e["target"]) for e in body["edges"]] == [
        ("stage:input", "step:fetch"), ("step:fetch", "stage:document"),
        ("stage:document", "step:segment"), ("step:segment", "stage:chunks"),
        ("stage:chunks", "step:embed"), ("step:embed", "stage:vectors")]
    node_ids = {n["id"] for n in body["nodes"]}
    assert all(e["source"] in node_ids and e["target"] in node_ids for e in body["edges"])


def _events_of_a_finished_execution(client: httpx.Client, execution_id: str) -> None:
    """The current state, steps first, then the stream closes."""
    events = read_events(client, execution_id)
    assert [kind for kind, _ in events] == ["step", "step", "step", "execution"]
    assert [data["step_type"] for _, data in events[:3]] == ["fetch", "segment", "embed"]
    assert events[-1][1]["status"] == "completed_with_errors"
    assert events[-1][1]["completed_at"] is not None


def _unknown_and_foreign_ids_answer_404(clients: Clients, execution_id: str) -> None:
    for resource in ("stats", "dag", "events"):
        for client, ref in [(clients.mine, "00000000-0000-0000-0000-000000000000"),
                            (clients.mine, "no-such-tag"), (clients.theirs, execution_id),
                            (clients.theirs, "run-1")]:
            response = client.get(f"/api/v1/executions/{ref}/{resource}")
            assert response.status_code == 404, (resource, ref)
            assert response.json()["error_code"] == "execution_not_found"
        too_long = clients.mine.get(f"/api/v1/executions/{'x' * 201}/{resource}")
        assert too_long.status_code == 422


def test_events_follow_a_running_execution_to_its_end(clients: Clients) -> None:
    execution_id = start(clients.mine, "slow", NAPS, "slow-1")
    began = time.monotonic()
    events = read_events(clients.mine, execution_id)
    assert time.monotonic() - began < 30

    statuses = [data["status"] for kind, data in events if kind == "execution"]
    assert statuses[-1] == "completed" and events[-1][0] == "execution"
    assert len(statuses) == len(set(statuses))  # only changes are sent
    naps = [data for kind, data in events if kind == "step" and data["step_type"] == "nap"]
    done = [n["completed"] for n in naps]
    assert done == sorted(done) and done[-1] == NAPS
    assert any(n["status"] != "completed" for n in naps)  # seen while it ran
    assert len(naps) == len({json.dumps(n, sort_keys=True) for n in naps})
    final = wait_for_status(clients.mine, execution_id, {"completed"})
    assert final["result"] == sum(range(NAPS))


def _openapi_describes_the_monitoring_routes(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for resource in ("stats", "dag", "events"):
        assert f"/api/v1/executions/{{execution_id}}/{resource}" in paths
    schemas = spec["components"]["schemas"]
    assert {"ExecutionStats", "StepStats", "AdapterStats", "ExecutionDag", "StageNode",
            "StepNode", "DagEdge"} <= set(schemas)
    stream = paths["/api/v1/executions/{execution_id}/events"]["get"]["responses"]["200"]
    events = stream["content"]["text/event-stream"]["x-events"]
    assert set(events) == {"execution", "step"}
    assert "step_index" in events["step"]["properties"]
