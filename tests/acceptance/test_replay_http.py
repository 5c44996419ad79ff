"""Replay and diff over real HTTP: fix a step, replay from where it broke, compare."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from tests.acceptance.conftest import Server, start_server, wait_for_status
from tests.conftest import scratch_database

PIPELINES = '''
from stageline import Fatal, Pipeline
import time

def build(name, broken):
    p = Pipeline(name)

    @p.step(output="markdown_segmented", fan_out=True)
    def segment(doc):
        time.sleep(doc.get("sleep", 0))
        return list(range(doc["n"]))

    @p.step(output="embeddings", name="embedding_generator")
    def embed(chunk):
        if broken and chunk % 20 == 7:
            raise Fatal(f"cannot embed {chunk}")
        return [chunk, chunk * 2]

    @p.step(output="index", collect=True)
    def index(vectors):
        return {"count": len(vectors), "total": sum(v[0] for v in vectors)}

    return p

ingest = build("ingest", broken=True)
ingest_fixed = build("ingest-fixed", broken=False)


def build_typed(name, segment_options=None, embed_options=None):
    # annotated handlers: the SDK derives each step's item schemas from them
    p = Pipeline(name)

    @p.step(output="markdown_segmented", fan_out=True, **(segment_options or {}))
    def segment(doc: dict) -> list[int]:
        return list(range(doc["n"]))

    @p.step(output="embeddings", name="embedding_generator", **(embed_options or {}))
    def embed(chunk: int) -> list[int]:
        return [chunk, chunk * 2]

    @p.step(output="index", collect=True)
    def index(vectors: list[list[int]]) -> dict:
        return {"count": len(vectors), "total": sum(v[0] for v in vectors)}

    return p

typed = build_typed("typed")
typed_objects = build_typed("typed-objects", embed_options={"input_schema": {
    "type": "object", "required": ["text"]}})
typed_reshaped = build_typed("typed-reshaped", segment_options={"output_schema": {
    "type": "integer", "minimum": 0}})
'''

# seed 002's ExecutionResponse, transcribed from the page
EXECUTION_RESPONSE = {
    "type": "object",
    "required": ["id", "config_id", "status", "started_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "config_id": {"type": "string", "format": "uuid"},
        "status": {"enum": ["running", "completed", "failed", "cancelled", "interrupted"]},
        "started_at": {"type": "string"},
        "completed_at": {"type": ["string", "null"]},
        "parent_execution_id": {"type": ["string", "null"]},
        "replay_source": {"enum": ["storage", "lineage", "manual", None]},
        "tag": {"type": ["string", "null"]},
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("replay")
    (tmp / "pipelines.py").write_text(PIPELINES)
    with scratch_database(tmp) as db_url:
        srv = start_server(tmp / "pipelines.py", db_url, str(tmp / "data"), tmp / "server.log")
        try:
            yield srv
        finally:
            srv.stop()


def run(client: httpx.Client, n: int, **extra: Any) -> dict[str, Any]:
    created = client.post("/api/v1/executions",
                          json={"pipeline": "ingest", "input": {"n": n, **extra}})
    assert created.status_code == 201, created.text
    return created.json()


def config_id_of(client: httpx.Client, pipeline: str) -> str:
    created = client.post("/api/v1/executions", json={"pipeline": pipeline, "input": {"n": 1}})
    assert created.status_code == 201
    return str(created.json()["config_id"])


def test_fix_and_replay_only_the_failed_items(server: Server) -> None:
    with server.client() as client:
        parent = wait_for_status(client, run(client, 60)["id"], {"failed"})
        fixed = config_id_of(client, "ingest-fixed")
        body = {"replay_source": "lineage", "from_stage": "markdown_segmented",
                "to_route": "embedding_generator", "config_id": fixed}
        plan = client.post(f"/api/v1/executions/{parent['id']}/replay",
                           json={**body, "dry_run": True})
        assert plan.status_code == 200, plan.text
        assert plan.json()["items"] == 3
        assert [s["action"] for s in plan.json()["steps"]] == ["skip", "run", "run"]

        replayed = client.post(f"/api/v1/executions/{parent['id']}/replay",
                               json={**body, "tag": "fix-1", "metadata": {"ticket": "T-1"}})
        assert replayed.status_code == 201, replayed.text
        child = replayed.json()
        jsonschema.validate(child, EXECUTION_RESPONSE)
        assert child["parent_execution_id"] == parent["id"]
        assert child["replay_source"] == "lineage" and child["tag"] == "fix-1"
        assert child["config_id"] == fixed

        done = wait_for_status(client, "fix-1", {"completed"})
        assert done["result"] == {"count": 60, "total": sum(range(60))}
        assert done["root_execution_id"] == parent["id"]
        assert done["metadata"] == {"ticket": "T-1"}

        replays = client.get(f"/api/v1/executions/{parent['id']}/replays").json()
        assert [r["id"] for r in replays] == [child["id"]]

        entries = client.get(f"/api/v1/executions/{child['id']}/lineage").json()["entries"]
        embedded = [e for e in entries if e["route_id"] == "embedding_generator"]
        assert len(embedded) == 3
        assert all(e["parent_correlation_id"] and e["replay_batch_id"] for e in embedded)

        diff = client.get(f"/api/v1/executions/{parent['id']}/diff/{child['id']}").json()
        by_stage = {s["stage"]: s for s in diff["stages"]}
        assert by_stage["markdown_segmented"]["unchanged"] == 60
        assert by_stage["embeddings"]["added"] == 3
        assert by_stage["embeddings"]["unchanged"] == 57
        assert by_stage["index"]["added"] == 1
        one = client.get(f"/api/v1/executions/{parent['id']}/diff/{child['id']}",
                         params={"stage": "index", "key": "all"}).json()["item"]
        assert one["change"] == "added" and '+  "count": 60' in one["unified"]


def test_storage_replay_reuses_earlier_stages(server: Server) -> None:
    with server.client() as client:
        parent = wait_for_status(client, run(client, 10)["id"], {"failed"})
        replayed = client.post(f"/api/v1/executions/{parent['id']}/replay", json={
            "replay_source": "storage", "from_stage": "markdown_segmented",
            "to_route": "embedding_generator",
            "config_id": config_id_of(client, "ingest-fixed")})
        assert replayed.status_code == 201, replayed.text
        done = wait_for_status(client, replayed.json()["id"], {"completed"})
        view = client.get(f"/api/v1/pipelines/executions/{done['id']}")
        if view.status_code == 200:  # the seed 003 view, once it exists
            steps = view.json()["steps"]
            assert steps[0]["status"] == "completed" and steps[0]["source_step_type"] == "segment"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"replay_source": "storage", "from_stage": "nope", "to_route": "embedding_generator"},
     400, "unknown_stage"),
    ({"replay_source": "storage", "from_stage": "markdown_segmented", "to_route": "nope"},
     400, "unknown_route"),
    ({"replay_source": "storage", "from_stage": "embeddings", "to_route": "embedding_generator"},
     400, "route_does_not_consume_stage"),
    ({"replay_source": "manual", "from_stage": "markdown_segmented",
      "to_route": "embedding_generator"}, 400, "from_path_required"),
    ({"replay_source": "storage", "from_stage": "markdown_segmented",
      "to_route": "embedding_generator", "config_id": "00000000-0000-7000-8000-000000000000"},
     404, "pipeline_not_found"),
])
def test_bad_replays_create_nothing(server: Server, body: dict[str, Any], status: int,
                                    code: str) -> None:
    with server.client() as client:
        parent = wait_for_status(client, run(client, 3)["id"], {"completed", "failed"})
        before = client.get("/api/v1/executions", params={"limit": 500}).json()["items"]
        answer = client.post(f"/api/v1/executions/{parent['id']}/replay", json=body)
        assert answer.status_code == status, answer.text
        assert answer.json()["error_code"] == code
        after = client.get("/api/v1/executions", params={"limit": 500}).json()["items"]
        assert len(after) == len(before)


def test_validation_unknown_parent_tag_and_running_parent(server: Server) -> None:
    body = {"replay_source": "storage", "from_stage": "markdown_segmented",
            "to_route": "embedding_generator"}
    with server.client() as client:
        assert client.post("/api/v1/executions/nope/replay", json=body).status_code == 404
        bad = client.post("/api/v1/executions/nope/replay", json={**body, "extra": 1})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "extra"
        wrong = client.post("/api/v1/executions/nope/replay",
                            json={**body, "replay_source": "disk"})
        assert wrong.status_code == 422

        slow = run(client, 5, sleep=3)
        running = client.post(f"/api/v1/executions/{slow['id']}/replay", json=body)
        assert running.status_code == 409 and running.json()["error_code"] == "parent_running"
        cancelled = client.post(f"/api/v1/executions/{slow['id']}/replay",
                                json={**body, "replay_source": "storage", "from_stage": "input",
                                      "to_route": "segment", "cancel_running": True,
                                      "tag": "after-cancel"})
        assert cancelled.status_code == 201, cancelled.text
        again = client.post(f"/api/v1/executions/{slow['id']}/replay",
                            json={**body, "from_stage": "input", "to_route": "segment",
                                  "tag": "after-cancel"})
        assert again.status_code == 409
        assert again.json()["error_code"] in ("tag_in_use", "parent_running")




def test_bulk_replay_previews_then_creates(server: Server) -> None:
    with server.client() as client:
        failed = [wait_for_status(client, run(client, 30)["id"], {"failed"}) for _ in range(2)]
        body = {"match": {"pipeline": "ingest", "failed_route": "embedding_generator"},
                "replay_source": "lineage", "from_stage": "markdown_segmented",
                "to_route": "embedding_generator",
                "config_id": config_id_of(client, "ingest-fixed")}
        preview = client.post("/api/v1/replays/bulk", json=body)
        assert preview.status_code == 200, preview.text
        matched = {r["execution_id"] for r in preview.json()["results"]}
        assert {f["id"] for f in failed} <= matched
        assert preview.json()["created"] == 0
        assert all(r["items"] == 2 for r in preview.json()["results"]
                   if r["execution_id"] in {f["id"] for f in failed})
        done = client.post("/api/v1/replays/bulk", json={**body, "preview": False}).json()
        created = [r for r in done["results"] if r["outcome"] == "created"]
        assert len(created) == done["created"] >= 2
        mine = [r for r in created if r["execution_id"] in {f["id"] for f in failed}]
        assert len(mine) == 2
        for r in mine:
            child = wait_for_status(client, r["replay_execution_id"], {"completed"})
            assert child["result"]["count"] == 30


# --- does the chosen config fit the parent's stages? -----------------------------------


def latest_config_id(client: httpx.Client, pipeline: str) -> str:
    return str(client.get(f"/api/v1/pipelines/{pipeline}").json()["latest_config_id"])


def typed_parent(client: httpx.Client, n: int) -> dict[str, Any]:
    created = client.post("/api/v1/executions", json={"pipeline": "typed", "input": {"n": n}})
    assert created.status_code == 201, created.text
    return wait_for_status(client, created.json()["id"], {"completed"})


def executions_count(client: httpx.Client) -> int:
    return len(client.get("/api/v1/executions", params={"limit": 500}).json()["items"])


def _typed_dry_run(client: httpx.Client, items: int, into: str
                   ) -> tuple[dict[str, Any], dict[str, Any], str, httpx.Response]:
    """A typed parent of `items` chunks and a dry run of replaying its embedding
    into the latest version of pipeline `into`: (parent, request body, url, plan)."""
    parent = typed_parent(client, items)
    body = {"replay_source": "storage", "from_stage": "markdown_segmented",
            "to_route": "embedding_generator", "config_id": latest_config_id(client, into)}
    url = f"/api/v1/executions/{parent['id']}/replay"
    plan = client.post(url, json={**body, "dry_run": True})
    assert plan.status_code == 200, plan.text
    return parent, body, url, plan


def test_items_that_do_not_fit_the_route_are_found_and_refused(server: Server) -> None:
    with server.client() as client:
        parent, body, url, plan = _typed_dry_run(client, 4, "typed-objects")
        assert plan.json()["fits"] is False and plan.json()["items"] == 4
        assert plan.json()["findings"] == [{
            "code": "item_shape_mismatch", "severity": "error",
            "message": "4 of 4 sampled items of stage 'markdown_segmented' do not fit the "
                       "input_schema of route 'embedding_generator'; item '0/00000': 0 is not "
                       "of type 'object'"}]

        before = executions_count(client)
        refused = client.post(url, json={**body, "tag": "never-made"})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error_code"] == "item_shape_mismatch"
        assert refused.json()["detail"] == plan.json()["findings"][0]["message"]
        assert executions_count(client) == before
        assert client.get(f"/api/v1/executions/{parent['id']}/replays").json() == []
        assert client.get("/api/v1/executions/never-made").status_code == 404

        cli = subprocess.run(
            [sys.executable, "-m", "stageline.cli", "replay", parent["id"], "--from-stage",
             "markdown_segmented", "--to-route", "embedding_generator", "--config-id",
             body["config_id"], "--dry-run", "--url", server.url],
            capture_output=True, text=True, timeout=60)
        assert cli.returncode == 1, cli.stderr
        assert "error item_shape_mismatch: 4 of 4 sampled items" in cli.stdout
        assert executions_count(client) == before


def test_a_reused_stage_of_another_shape_is_a_warning_and_the_replay_runs(
        server: Server) -> None:
    with server.client() as client:
        _, body, url, plan = _typed_dry_run(client, 6, "typed-reshaped")
        assert plan.json()["fits"] is True
        assert [(f["code"], f["severity"]) for f in plan.json()["findings"]] == [
            ("stage_shape_changed", "warning")]
        assert "stage 'markdown_segmented' is reused from the parent" in (
            plan.json()["findings"][0]["message"])

        replayed = client.post(url, json=body)
        assert replayed.status_code == 201, replayed.text
        done = wait_for_status(client, replayed.json()["id"], {"completed"})
        assert done["result"] == {"count": 6, "total": sum(range(6))}


def test_items_that_fit_replay_into_their_own_config(server: Server) -> None:
    with server.client() as client:
        parent = typed_parent(client, 3)
        config = client.get(f"/api/v1/configs/{parent['config_id']}").json()
        declared = config["config_snapshot"]["steps"][1]
        assert declared["input_schema"] == {"type": "integer"}  # from `chunk: int`
        url = f"/api/v1/executions/{parent['id']}/replay"
        body = {"replay_source": "storage", "from_stage": "markdown_segmented",
                "to_route": "embedding_generator"}
        plan = client.post(url, json={**body, "dry_run": True}).json()
        assert plan["fits"] is True and plan["findings"] == []
        replayed = client.post(url, json=body)
        assert replayed.status_code == 201, replayed.text
        done = wait_for_status(client, replayed.json()["id"], {"completed"})
        assert done["result"] == {"count": 3, "total": 3}
