"""Sources over real HTTP: create, read and list them, start executions
through them (seed 001's shape), list a source's executions, and keep every
tenant's sources and executions to itself. One `stageline serve` for the module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import wait_for_status
from tests.acceptance.seed_schemas import Stack, assert_seed_001, shared_server

PIPELINES = '''
from stageline import Pipeline

words = Pipeline("words")


@words.step(output="lines", fan_out=True)
def split(doc):
    """Plain input, or an operation whose body holds the text."""
    return doc.get("body", doc)["text"].splitlines()


@words.step(output="total", collect=True)
def total(lines):
    return sum(len(line.split()) for line in lines)


reviewed = Pipeline("reviewed")


@reviewed.step(output="drafts", review=True)
def draft(operation):
    return operation
'''
OPERATION = {"taskId": "task-1", "action": "CREATE",
             "target": {"targetType": "RESOURCE", "id": "r-1", "type": "article"},
             "body": {"text": "one two"}}
Body = dict[str, Any]
MAX_BODY = 4096


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with shared_server(tmp_path_factory.mktemp("sources"), PIPELINES,
                       env={"STAGELINE_MAX_BODY_BYTES": str(MAX_BODY)}) as started:
        yield started


def new_key(prefix: str = "src") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_source(client: httpx.Client, key: str, pipeline: str = "words") -> Body:
    response = client.post("/api/v1/sources", json={"key": key, "pipeline": pipeline})
    assert response.status_code == 201, response.text
    body: Body = response.json()
    return body


def start_via(client: httpx.Client, key: str, payload: Any) -> Body:
    response = client.post(f"/sources/{key}/v1/pipelines/executions", json=payload)
    assert response.status_code == 201, response.text
    body: Body = response.json()
    assert_seed_001(body)
    return body


def executions_of(client: httpx.Client, key: str, **params: Any) -> Body:
    response = client.get(f"/sources/{key}/v1/pipelines/executions", params=params)
    assert response.status_code == 200, response.text
    body: Body = response.json()
    for item in body["data"]:
        assert_seed_001(item)
    return body


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert set(body) == {"detail", "error_code", "correlation_id", "timestamp"}


def test_create_read_and_list_sources(stack: Stack) -> None:
    prefix = new_key("listed")
    keys = [f"{prefix}-{n}" for n in ("b", "a", "c")]
    created = [create_source(stack.mine, k) for k in keys]

    assert set(created[0]) == {"key", "pipeline", "pipeline_id", "created_at",
                               "executions_url"}
    assert (created[0]["key"], created[0]["pipeline"]) == (keys[0], "words")
    assert created[0]["executions_url"] == f"/sources/{keys[0]}/v1/pipelines/executions"
    assert stack.mine.get(f"/api/v1/sources/{keys[1]}").json() == created[1]
    listed = _all_sources(stack.mine)
    mine = [s for s in listed if s["key"].startswith(prefix)]
    assert [s["key"] for s in mine] == sorted(keys)
    assert [s["key"] for s in listed] == sorted(s["key"] for s in listed)


def _all_sources(client: httpx.Client) -> list[Body]:
    """Every source, one per page, following the cursor."""
    seen: list[Body] = []
    cursor: str | None = None
    for _ in range(1000):
        page = client.get("/api/v1/sources",
                          params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["items"]) <= 1
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


def test_source_errors(stack: Stack) -> None:
    key = new_key()
    create_source(stack.mine, key)

    again = stack.mine.post("/api/v1/sources", json={"key": key, "pipeline": "reviewed"})
    assert_error(again, 409, "source_exists")
    assert stack.mine.get(f"/api/v1/sources/{key}").json()["pipeline"] == "words"  # unchanged
    assert_error(stack.mine.post("/api/v1/sources", json={"key": new_key(), "pipeline": "nope"}),
                 404, "pipeline_not_found")
    assert_error(stack.mine.get(f"/api/v1/sources/{new_key()}"), 404, "source_not_found")
    for bad in ({"key": "has space", "pipeline": "words"}, {"key": "", "pipeline": "words"},
                {"key": "k" * 129, "pipeline": "words"}, {"key": "-leading", "pipeline": "words"},
                {"key": new_key()}, {"key": new_key(), "pipeline": "words", "extra": 1}):
        response = stack.mine.post("/api/v1/sources", json=bad)
        assert response.status_code == 422, bad
    for params in ({"limit": 0}, {"limit": 501}, {"cursor": "c" * 513}):
        assert stack.mine.get("/api/v1/sources", params=params).status_code == 422, params


def test_start_an_execution_through_a_source(stack: Stack) -> None:
    key = new_key()
    create_source(stack.mine, key)

    created = start_via(stack.mine, key, OPERATION)

    assert created["status"] == "IN_PROGRESS"
    assert created["operation"] == {k: v for k, v in OPERATION.items() if k != "body"}
    assert [s["status"] for s in created["steps"]] == ["PENDING", "PENDING"]
    assert created["processedOperation"] is None
    wait_for_status(stack.mine, created["id"], {"completed"})
    polled = stack.mine.get(f"/api/v1/pipelines/executions/{created['id']}").json()
    assert polled["input_config"]["input"] == OPERATION
    assert polled["input_config"]["options"]["source_key"] == key
    with_body = stack.mine.post(f"/sources/{key}/v1/pipelines/executions",
                                params={"withOperationBody": "true"}, json=[1, 2])
    assert with_body.status_code == 201, with_body.text
    assert with_body.json()["operation"]["body"] == [1, 2]


def test_starting_through_a_source_rejects_bad_requests(stack: Stack) -> None:
    key = new_key()
    create_source(stack.mine, key)
    path = f"/sources/{key}/v1/pipelines/executions"

    malformed = {**OPERATION, "target": "not an object"}
    assert_error(stack.mine.post(path, json=malformed), 400, "invalid_operation")
    assert_error(stack.mine.post(path, json={**OPERATION, "action": ""}), 400,
                 "invalid_operation")
    assert_error(stack.mine.post(f"/sources/{new_key()}/v1/pipelines/executions", json={}),
                 404, "source_not_found")
    assert stack.mine.post(path, content=b"{not json",
                           headers={"content-type": "application/json"}).status_code == 422
    assert stack.mine.post(path).status_code == 422
    assert_error(stack.mine.post(path, json={"text": "x" * MAX_BODY}), 413, "payload_too_large")
    assert executions_of(stack.mine, key)["data"] == []  # nothing was started


def test_a_source_lists_its_executions_newest_first(stack: Stack) -> None:
    key, other = new_key(), new_key()
    create_source(stack.mine, key)
    create_source(stack.mine, other)
    started = [start_via(stack.mine, key, {"text": f"run {i}"})["id"] for i in range(3)]
    start_via(stack.mine, other, {"text": "elsewhere"})

    first = executions_of(stack.mine, key, limit=2)
    second = executions_of(stack.mine, key, limit=2, cursor=first["nextCursor"])

    assert [e["id"] for e in first["data"]] == started[::-1][:2]
    assert [e["id"] for e in second["data"]] == started[:1]
    assert second["nextCursor"] is None
    assert all("body" not in e["operation"] for e in first["data"])
    bodies = executions_of(stack.mine, key, withOperationBody="true")["data"]
    assert [e["operation"]["body"] for e in bodies] == [{"text": f"run {i}"} for i in (2, 1, 0)]
    assert_error(stack.mine.get(f"/sources/{key}/v1/pipelines/executions",
                                params={"cursor": "garbage"}), 400, "invalid_cursor")
    assert_error(stack.mine.get(f"/sources/{new_key()}/v1/pipelines/executions"), 404,
                 "source_not_found")


def test_the_review_queue_is_a_status_filter(stack: Stack) -> None:
    key = new_key()
    create_source(stack.mine, key, "reviewed")
    waiting = start_via(stack.mine, key, OPERATION)["id"]
    wait_for_status(stack.mine, waiting, {"in_review"})

    queue = executions_of(stack.mine, key, status="IN_REVIEW")["data"]
    finished = executions_of(stack.mine, key, status=["SUCCESSFUL", "DROPPED"])["data"]

    assert [(e["id"], e["status"]) for e in queue] == [(waiting, "IN_REVIEW")]
    assert finished == []
    invalid = stack.mine.get(f"/sources/{key}/v1/pipelines/executions",
                             params={"status": "in_review"})
    assert invalid.status_code == 422


def test_tenants_see_only_their_own_sources(stack: Stack) -> None:
    key = new_key("shared")
    create_source(stack.mine, key)
    create_source(stack.theirs, key)  # the same key, another tenant: no conflict
    mine = start_via(stack.mine, key, {"text": "mine"})["id"]
    theirs = start_via(stack.theirs, key, {"text": "theirs"})["id"]

    assert [e["id"] for e in executions_of(stack.mine, key)["data"]] == [mine]
    assert [e["id"] for e in executions_of(stack.theirs, key)["data"]] == [theirs]
    path = f"/sources/{key}/v1/pipelines/executions"
    assert_error(stack.theirs.get(f"{path}/{mine}"), 404, "execution_not_found")
    assert_error(stack.mine.get(f"{path}/{theirs}"), 404, "execution_not_found")
    only_mine = new_key("private")
    create_source(stack.mine, only_mine)
    assert_error(stack.theirs.get(f"/api/v1/sources/{only_mine}"), 404, "source_not_found")
    assert_error(stack.theirs.post(f"/sources/{only_mine}/v1/pipelines/executions", json={}),
                 404, "source_not_found")
    assert only_mine not in {s["key"] for s in _all_sources(stack.theirs)}


def test_seed_001_routes_accept_the_clinia_key_header(stack: Stack) -> None:
    key = new_key()
    create_source(stack.mine, key)
    path = f"/sources/{key}/v1/pipelines/executions"
    clinia = {"X-Clinia-API-Key": stack.my_key}

    created = stack.anonymous.post(path, json={"text": "a"}, headers=clinia)
    assert created.status_code == 201, created.text
    listed = stack.anonymous.get(path, headers=clinia)
    assert [e["id"] for e in listed.json()["data"]] == [created.json()["id"]]
    assert_error(stack.anonymous.post(path, json={"text": "a"}), 401, "missing_api_key")
    assert_error(stack.anonymous.get(path, headers={"X-Clinia-API-Key": "sl_wrong"}), 401,
                 "invalid_api_key")


def test_openapi_describes_the_source_routes(stack: Stack) -> None:
    spec = stack.mine.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/api/v1/sources", "/api/v1/sources/{sourceKey}",
            "/sources/{sourceKey}/v1/pipelines/executions",
            "/sources/{sourceKey}/v1/pipelines/executions/{pipelineExecutionId}"} <= set(paths)
    get = paths["/sources/{sourceKey}/v1/pipelines/executions/{pipelineExecutionId}"]["get"]
    assert {p["name"] for p in get["parameters"]} == {
        "sourceKey", "pipelineExecutionId", "withOperationBody"}
    assert get["description"].startswith("Returns the pipeline execution")
    status = spec["components"]["schemas"]["PipelineExecution"]["properties"]["status"]
    assert set(status["enum"]) == {"SUCCESSFUL", "ERROR", "IN_PROGRESS", "IN_REVIEW",
                                   "CANCELLED", "DROPPED"}
