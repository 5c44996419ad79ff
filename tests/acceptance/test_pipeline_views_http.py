"""Seed 003 (GET /api/v1/pipelines/executions/{id} and each step's result) and
seed 001 (GET /sources/{key}/v1/pipelines/executions/{id}) over real HTTP
against one `stageline serve` shared by the module, with API keys for two
tenants and a small inline limit, so large items live in stage storage."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import wait_for_status
from tests.acceptance.seed_schemas import (
    Stack,
    assert_same_fields,
    assert_seed_001,
    assert_seed_003,
    seed_001_example,
    seed_003_schema,
    shared_server,
)

INLINE_LIMIT = 256
PIPELINES = '''
import time
from pathlib import Path

from stageline import Fatal, Pipeline

words = Pipeline("words")


@words.step(output="lines", fan_out=True)
def split(doc):
    return doc["text"].splitlines()


@words.step(output="counted")
def count(line):
    return {"line": line, "words": len(line.split())}


@words.step(output="total", collect=True)
def total(rows):
    return sum(r["words"] for r in rows)


gated = Pipeline("gated")


@gated.step(output="lines", fan_out=True)
def split_behind_gate(doc):
    return [{"gate": doc["gate"], "line": line} for line in doc["lines"]]


@gated.step(output="shouted")
def wait_for_gate(item):
    deadline = time.monotonic() + 60
    while not Path(item["gate"]).exists():
        if time.monotonic() > deadline:
            raise Fatal("the gate never opened")
        time.sleep(0.02)
    return item["line"].upper()


sizes = Pipeline("sizes")


@sizes.step(output="made", fan_out=True)
def make(doc):
    return ["x" * doc["big"], "small", bytes(range(256))]


reviewed = Pipeline("reviewed")


@reviewed.step(output="drafts", review=True)
def draft(operation):
    return {**operation, "body": {**operation["body"], "reviewed": False}}


@reviewed.step(output="published")
def publish(operation):
    return {**operation, "action": "UPDATE", "body": {**operation["body"], "published": True}}


broken = Pipeline("broken")


@broken.step(output="numbers", fan_out=True)
def explode(doc):
    return doc["numbers"]


@broken.step(output="checked")
def check(number):
    if number < 0:
        raise Fatal(f"negative number {number}")
    if number == 0:
        raise RuntimeError("zero is not allowed")
    return number * 10
'''
VIEWS = "/api/v1/pipelines/executions"
Body = dict[str, Any]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("pipeline_views")
    with shared_server(folder, PIPELINES,
                       env={"STAGELINE_INLINE_LIMIT": str(INLINE_LIMIT)}) as started:
        yield started


# -- helpers ------------------------------------------------------------------------


def start(client: httpx.Client, pipeline: str, payload: Any, **options: Any) -> str:
    created = client.post("/api/v1/executions",
                          json={"pipeline": pipeline, "input": payload, **options})
    assert created.status_code == 201, created.text
    execution_id: str = created.json()["id"]
    return execution_id


def view(client: httpx.Client, ref: str) -> Body:
    response = client.get(f"{VIEWS}/{ref}")
    assert response.status_code == 200, response.text
    body: Body = response.json()
    return body


def wait_view(client: httpx.Client, ref: str, ready: Callable[[Body], bool],
              timeout: float = 30) -> Body:
    deadline = time.monotonic() + timeout
    body = view(client, ref)
    while not ready(body):
        if time.monotonic() > deadline:
            raise AssertionError(f"the view of {ref} never became ready: {body}")
        time.sleep(0.05)
        body = view(client, ref)
    return body


def result(client: httpx.Client, url: str, **params: Any) -> Body:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    body: Body = response.json()
    return body


def make_source(client: httpx.Client, pipeline: str) -> str:
    key = f"{pipeline}-{uuid.uuid4().hex[:8]}"
    created = client.post("/api/v1/sources", json={"key": key, "pipeline": pipeline})
    assert created.status_code == 201, created.text
    return key


def start_via(client: httpx.Client, key: str, payload: Any) -> Body:
    created = client.post(f"/sources/{key}/v1/pipelines/executions", json=payload)
    assert created.status_code == 201, created.text
    body: Body = created.json()
    assert_seed_001(body)
    return body


def seed_001(client: httpx.Client, key: str, execution_id: str,
             with_body: bool = False) -> Body:
    response = client.get(f"/sources/{key}/v1/pipelines/executions/{execution_id}",
                          params={"withOperationBody": str(with_body).lower()})
    assert response.status_code == 200, response.text
    body: Body = response.json()
    assert_seed_001(body)
    return body


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert set(body) == {"detail", "error_code", "correlation_id", "timestamp"}


# -- seed 003 -----------------------------------------------------------------------


def test_a_finished_execution_answers_seed_003(stack: Stack) -> None:
    text = "one two\nthree\nfour five six"
    eid = start(stack.mine, "words", {"text": text}, tag="views-words",
                metadata={"team": "docs"})
    wait_for_status(stack.mine, eid, {"completed"})

    body = view(stack.mine, eid)

    assert_seed_003(body)
    assert view(stack.mine, "views-words") == body  # a tag is accepted too
    assert (body["execution_id"], body["status"], body["pipeline_version"]) == (
        eid, "completed", 1)
    assert body["config_snapshot"]["name"] == "words"
    assert body["input_config"]["input"] == {"text": text}
    assert body["input_config"]["metadata"] == {"team": "docs"}
    assert body["input_config"]["options"]["tag"] == "views-words"
    assert [(s["step_index"], s["step_type"], s["status"], s["lookup_key"], s["result_url"])
            for s in body["steps"]] == [
        (i, name, "completed", f"{eid}/{stage}", f"{VIEWS}/{eid}/steps/{i}/result")
        for i, (name, stage) in enumerate([("split", "lines"), ("count", "counted"),
                                           ("total", "total")])]
    for step in body["steps"]:
        assert step["started_at"] <= step["finished_at"]
        assert step["error_message"] is None
    created, completed = (datetime.fromisoformat(body[f]) for f in ("created", "completed_at"))
    assert created <= datetime.fromisoformat(body["started_at"]) <= completed
    _check_rate_breakdown(body["rate_breakdown"])
    total = result(stack.mine, body["steps"][2]["result_url"])
    assert [(i["key"], i["value"]) for i in total["items"]] == [("all", 6)]


def _check_rate_breakdown(rates: Body) -> None:
    assert [(s["step_type"], s["items_completed"], s["items_failed"], s["attempts"])
            for s in rates["steps"]] == [("split", 1, 0, 1), ("count", 3, 0, 3),
                                         ("total", 1, 0, 1)]
    assert all(s["handler_seconds"] >= 0 for s in rates["steps"])
    total = rates["total"]
    assert (total["items_completed"], total["items_failed"], total["attempts"]) == (5, 0, 5)
    assert total["handler_seconds"] == pytest.approx(
        sum(s["handler_seconds"] for s in rates["steps"]), abs=1e-5)


def test_openapi_names_the_seed_003_models(stack: Stack) -> None:
    spec = stack.mine.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("PipelineExecutionResponse", "PipelineExecutionStepResponse"):
        seed = seed_003_schema(name)
        assert set(schemas[name]["properties"]) == set(seed["properties"]), name
        assert sorted(schemas[name]["required"]) == sorted(seed["required"]), name
    get = spec["paths"][f"{VIEWS}/{{execution_id}}"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == (
        "#/components/schemas/PipelineExecutionResponse")
    assert "lookup_key" in get["description"]
    steps = spec["paths"][f"{VIEWS}/{{execution_id}}/steps/{{step_index}}/result"]["get"]
    assert {p["name"] for p in steps["parameters"]} == {
        "execution_id", "step_index", "limit", "cursor", "key"}
    assert "404" in steps["responses"] and "409" in steps["responses"]


def test_partial_results_are_readable_while_the_execution_runs(stack: Stack) -> None:
    gate = stack.folder / f"gate-{uuid.uuid4().hex}"
    eid = start(stack.mine, "gated", {"gate": str(gate), "lines": ["alpha", "beta", "gamma"]})
    try:
        running = wait_view(stack.mine, eid, lambda b: b["steps"][0]["result_url"] is not None
                            and b["steps"][1]["status"] == "running")
        _check_first_stage_while_blocked(stack.mine, eid, running)
    finally:
        gate.touch()  # unblocks the second step, whatever happened above

    wait_for_status(stack.mine, eid, {"completed"})
    done = view(stack.mine, eid)
    assert done["steps"][1]["lookup_key"] == f"{eid}/shouted"
    shouted = result(stack.mine, done["steps"][1]["result_url"])
    assert [i["value"] for i in shouted["items"]] == ["ALPHA", "BETA", "GAMMA"]


def _check_first_stage_while_blocked(client: httpx.Client, eid: str, running: Body) -> None:
    assert_seed_003(running)
    assert running["status"] == "running" and running["completed_at"] is None
    first, second = running["steps"]
    assert (first["status"], first["lookup_key"]) == ("completed", f"{eid}/lines")
    assert (second["lookup_key"], second["result_url"], second["finished_at"]) == (
        None, None, None)
    lines = result(client, first["result_url"])
    assert [i["value"]["line"] for i in lines["items"]] == ["alpha", "beta", "gamma"]
    assert (lines["stage"], lines["status"], lines["next_cursor"]) == ("lines", "completed", None)
    nothing_yet = result(client, f"{VIEWS}/{eid}/steps/1/result")
    assert (nothing_yet["items"], nothing_yet["status"], nothing_yet["lookup_key"]) == (
        [], "running", None)
    assert view(client, eid)["status"] == "running"  # read while it still ran


def test_a_replay_shows_the_stages_it_reuses_from_its_parent(stack: Stack) -> None:
    parent = start(stack.mine, "words", {"text": "a b\nc"})
    wait_for_status(stack.mine, parent, {"completed"})
    replayed = stack.mine.post(f"/api/v1/executions/{parent}/replay", json={
        "replay_source": "storage", "from_stage": "lines", "to_route": "count"})
    assert replayed.status_code == 201, replayed.text
    child = replayed.json()["id"]
    wait_for_status(stack.mine, child, {"completed"})

    body = view(stack.mine, child)

    assert_seed_003(body)
    copied, counted, _ = body["steps"]
    assert (copied["status"], copied["source_step_type"]) == ("completed", "split")
    assert copied["lookup_key"] == copied["checkpoint_id"] == f"{parent}/lines"
    assert copied["result_url"] == f"{VIEWS}/{child}/steps/0/result"
    lines = result(stack.mine, copied["result_url"])
    assert [i["value"] for i in lines["items"]] == ["a b", "c"]  # the parent's, by reference
    assert counted["lookup_key"] == f"{child}/counted"
    assert body["rate_breakdown"]["steps"][0]["attempts"] == 0  # nothing ran again
    assert body["input_config"]["options"]["parent_execution_id"] == parent
    assert result(stack.mine, f"{VIEWS}/{child}/steps/2/result")["items"][0]["value"] == 3


def test_result_pages_follow_item_keys(stack: Stack) -> None:
    eid = start(stack.mine, "words", {"text": "\n".join(f"line {i}" for i in range(7))})
    wait_for_status(stack.mine, eid, {"completed"})
    url = f"{VIEWS}/{eid}/steps/1/result"

    pages, cursor = [], None
    while True:
        page = result(stack.mine, url, limit=3, **({"cursor": cursor} if cursor else {}))
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == page["items"][-1]["key"]

    assert [len(p) for p in pages] == [3, 3, 1]
    keys = [i["key"] for p in pages for i in p]
    assert keys == [f"0/{i:05d}" for i in range(7)]
    everything = result(stack.mine, url, limit=7)
    assert everything["next_cursor"] is None
    assert everything["items"] == [i for p in pages for i in p]
    assert everything["items"][4]["value"] == {"line": "line 4", "words": 2}


def test_one_item_by_key_comes_raw(stack: Stack) -> None:
    eid = start(stack.mine, "words", {"text": "a b\nc"})
    wait_for_status(stack.mine, eid, {"completed"})
    url = f"{VIEWS}/{eid}/steps/1/result"
    listed = result(stack.mine, url)["items"][1]

    raw = stack.mine.get(url, params={"key": listed["key"]})

    assert raw.status_code == 200, raw.text
    assert raw.headers["content-type"] == "application/json"
    assert json.loads(raw.content) == listed["value"] == {"line": "c", "words": 1}
    assert raw.headers["etag"] == f'"{listed["content_hash"]}"'
    assert "sha256:" + hashlib.sha256(raw.content).hexdigest() == listed["content_hash"]
    assert len(raw.content) == listed["size"]


def test_large_items_come_from_storage_and_bytes_stay_bytes(stack: Stack) -> None:
    eid = start(stack.mine, "sizes", {"big": 5000})
    wait_for_status(stack.mine, eid, {"completed"})
    step = view(stack.mine, eid)["steps"][0]
    items = {i["key"]: i for i in result(stack.mine, step["result_url"])["items"]}
    big, small, raw = items["0/00000"], items["0/00001"], items["0/00002"]
    folder = stack.storage / step["lookup_key"]

    stored = _files_of(folder, "0/00000")
    assert len(stored) == 1  # over the inline limit: in stage storage, below lookup_key
    assert _files_of(folder, "0/00001") == []  # small: inline in the database
    assert set(big) == set(small) == set(raw)  # the client cannot tell
    assert (big["value"], big["size"], big["encoding"]) == ("x" * 5000, 5002, "json")
    assert (small["value"], small["encoding"]) == ("small", "json")
    assert (raw["content_type"], raw["encoding"], raw["size"]) == (
        "application/octet-stream", "base64", 256)
    assert base64.b64decode(raw["value"]) == bytes(range(256))

    one = stack.mine.get(step["result_url"], params={"key": "0/00002"})
    assert one.headers["content-type"] == "application/octet-stream"
    assert one.content == bytes(range(256))
    assert json.loads(stack.mine.get(step["result_url"], params={"key": "0/00000"}).content) == (
        "x" * 5000)

    stored[0].unlink()  # bytes lost behind the database's back
    assert_error(stack.mine.get(step["result_url"]), 409, "stored_item_missing")
    assert_error(stack.mine.get(step["result_url"], params={"key": "0/00000"}), 409,
                 "stored_item_missing")


def _files_of(folder: Path, key: str) -> list[Path]:
    """The stored files of one item (the name may carry a content suffix)."""
    parent, _, name = key.rpartition("/")
    return [p for p in (folder / parent).glob(f"{name}*") if p.is_file()]


def test_unknown_and_foreign_ids_answer_404(stack: Stack) -> None:
    eid = start(stack.mine, "words", {"text": "a"})
    wait_for_status(stack.mine, eid, {"completed"})
    nobody = uuid.uuid4()
    cases = [
        (stack.mine, f"{VIEWS}/{nobody}", "execution_not_found"),
        (stack.mine, f"{VIEWS}/no-such-tag", "execution_not_found"),
        (stack.theirs, f"{VIEWS}/{eid}", "execution_not_found"),
        (stack.theirs, f"{VIEWS}/{eid}/steps/0/result", "execution_not_found"),
        (stack.theirs, f"{VIEWS}/{eid}/steps/0/result?key=0", "execution_not_found"),
        (stack.mine, f"{VIEWS}/{nobody}/steps/0/result", "execution_not_found"),
        (stack.mine, f"{VIEWS}/{eid}/steps/3/result", "step_not_found"),
        (stack.mine, f"{VIEWS}/{eid}/steps/10000/result", "step_not_found"),
        (stack.mine, f"{VIEWS}/{eid}/steps/1/result?key=9/99999", "item_not_found"),
    ]
    for client, path, code in cases:
        assert_error(client.get(path), 404, code)


@pytest.mark.parametrize(("path", "params"), [
    ("/steps/0/result", {"limit": 0}),
    ("/steps/0/result", {"limit": 1001}),
    ("/steps/0/result", {"cursor": "k" * 513}),
    ("/steps/0/result", {"key": ""}),
    ("/steps/zero/result", {}),
])
def test_out_of_bounds_requests_answer_422(stack: Stack, path: str,
                                           params: dict[str, Any]) -> None:
    response = stack.mine.get(f"{VIEWS}/{uuid.uuid4()}{path}", params=params)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


def test_requests_without_a_valid_key_answer_401(stack: Stack) -> None:
    path = f"{VIEWS}/{uuid.uuid4()}"
    assert_error(stack.anonymous.get(path), 401, "missing_api_key")
    assert_error(stack.anonymous.get(path, headers={"X-API-Key": "sl_nope"}), 401,
                 "invalid_api_key")


# -- seed 001 -----------------------------------------------------------------------

OPERATION = {"taskId": "task-42", "action": "CREATE",
             "target": {"targetType": "RESOURCE", "id": "doc-1", "type": "article"},
             "body": {"title": "Rivers"}}
HEAD = {k: v for k, v in OPERATION.items() if k != "body"}


def test_review_approved_shows_the_decision(stack: Stack) -> None:
    key = make_source(stack.mine, "reviewed")
    created = start_via(stack.mine, key, OPERATION)
    assert (created["status"], created["operation"], created["processedOperation"]) == (
        "IN_PROGRESS", HEAD, None)
    eid = created["id"]
    wait_for_status(stack.mine, eid, {"in_review"})
    _check_waiting_for_review(stack, key, eid)

    approved = stack.mine.post(f"/api/v1/executions/{eid}/actions", json={
        "action": "approve", "description": "looks right", "author_id": "u-7",
        "author_email": "reviewer@example.com"})
    assert approved.status_code == 200, approved.text
    wait_for_status(stack.mine, eid, {"completed"})

    done = seed_001(stack.mine, key, eid, with_body=True)
    assert done["status"] == "SUCCESSFUL"
    assert [s["status"] for s in done["steps"]] == ["PROCESSED", "PROCESSED"]
    decision = done["steps"][0]["decision"]
    assert decision["id"] and decision["description"] == "looks right"
    assert decision["author"] == {"id": "u-7", "email": "reviewer@example.com"}
    assert datetime.fromisoformat(decision["actedAt"]) <= datetime.fromisoformat(
        done["updatedAt"])
    assert done["steps"][1]["decision"] is None
    assert done["processedOperation"] == {**HEAD, "action": "UPDATE", "body": {
        "title": "Rivers", "reviewed": False, "published": True}}
    assert_same_fields(done, seed_001_example())


def _check_waiting_for_review(stack: Stack, key: str, eid: str) -> None:
    waiting = seed_001(stack.mine, key, eid)
    assert waiting["status"] == "IN_REVIEW"
    assert waiting["steps"][0]["status"] == "IN_REVIEW"
    assert waiting["steps"][0]["decision"] is None
    assert waiting["steps"][0]["processedAt"] is not None
    assert waiting["steps"][1]["status"] in {"PENDING", "IN_PROGRESS"}
    # without withOperationBody, neither operation has a body
    assert (waiting["operation"], waiting["processedOperation"]) == (HEAD, HEAD)
    full = seed_001(stack.mine, key, eid, with_body=True)
    assert full["operation"] == OPERATION
    assert full["processedOperation"] == {**HEAD, "body": {"title": "Rivers",
                                                           "reviewed": False}}
    polled = view(stack.mine, eid)  # seed 003 sees the same execution
    assert polled["status"] == "running"
    assert (polled["steps"][0]["status"], polled["steps"][0]["lookup_key"]) == (
        "completed", f"{eid}/drafts")


def test_review_rejected_drops_the_execution(stack: Stack) -> None:
    key = make_source(stack.mine, "reviewed")
    eid = start_via(stack.mine, key, OPERATION)["id"]
    wait_for_status(stack.mine, eid, {"in_review"})

    rejected = stack.mine.post(f"/api/v1/executions/{eid}/actions", json={
        "action": "reject", "description": "not accurate", "author_email": "lead@example.com"})
    assert rejected.status_code == 200, rejected.text

    dropped = seed_001(stack.mine, key, eid)
    assert dropped["status"] == "DROPPED"
    assert [s["status"] for s in dropped["steps"]] == ["CANCELLED", "CANCELLED"]
    decision = dropped["steps"][0]["decision"]
    assert decision["description"] == "not accurate"
    assert decision["author"] == {"id": None, "email": "lead@example.com"}
    assert dropped["processedOperation"] is None  # the change was rejected
    assert view(stack.mine, eid)["status"] == "failed"


def test_a_failing_step_shows_error_with_details(stack: Stack) -> None:
    key = make_source(stack.mine, "broken")
    eid = start_via(stack.mine, key, {"numbers": [3, -1, 0]})["id"]
    wait_for_status(stack.mine, eid, {"completed_with_errors"})

    body = seed_001(stack.mine, key, eid, with_body=True)

    assert body["status"] == "ERROR"
    assert [s["status"] for s in body["steps"]] == ["PROCESSED", "ERROR"]
    assert body["steps"][0]["error"] is None
    error = body["steps"][1]["error"]
    assert (error["code"], error["type"], error["message"]) == (
        400, "INVALID_ARGUMENT", "2 of 3 items failed")
    assert [(d["itemKey"], d["type"], d["message"], d["attempt"]) for d in error["details"]] == [
        ("0/00001", "Fatal", "negative number -1", 1),
        ("0/00002", "RuntimeError", "zero is not allowed", 1)]
    assert all(d["adapterName"].endswith(":check") and d["correlationId"]
               for d in error["details"])
    # the last completed step is the fan-out: its three items are the processed body
    assert body["processedOperation"]["body"] == [3, -1, 0]
    assert_same_fields(body, seed_001_example())

    polled = view(stack.mine, eid)
    assert polled["status"] == "completed_with_errors"
    assert (polled["steps"][1]["status"], polled["steps"][1]["error_message"]) == (
        "failed", "2 of 3 items failed")


def test_an_execution_that_fails_for_good(stack: Stack) -> None:
    key = make_source(stack.mine, "broken")
    eid = start_via(stack.mine, key, {"numbers": [0]})["id"]
    wait_for_status(stack.mine, eid, {"failed"})

    body = seed_001(stack.mine, key, eid, with_body=True)

    assert body["status"] == "ERROR"
    error = body["steps"][1]["error"]
    assert (error["code"], error["type"]) == (500, "INTERNAL")
    assert [d["type"] for d in error["details"]] == ["RuntimeError"]
    assert body["processedOperation"]["body"] == 0  # the one item of the last completed step
    assert view(stack.mine, eid)["status"] == "failed"


def test_an_input_that_is_not_an_operation_is_wrapped_in_one(stack: Stack) -> None:
    key = make_source(stack.mine, "words")
    eid = start_via(stack.mine, key, {"text": "a b c"})["id"]
    wait_for_status(stack.mine, eid, {"completed"})
    head = {"taskId": eid, "action": "CREATE",
            "target": {"targetType": "SOURCE", "id": key, "type": "words"}}

    plain = seed_001(stack.mine, key, eid)
    full = seed_001(stack.mine, key, eid, with_body=True)

    assert (plain["status"], plain["operation"], plain["processedOperation"]) == (
        "SUCCESSFUL", head, head)
    assert full["operation"] == {**head, "body": {"text": "a b c"}}
    assert full["processedOperation"] == {**head, "body": 3}
    default = stack.mine.get(f"/sources/{key}/v1/pipelines/executions/{eid}").json()
    assert default == plain
    # pipelineDefinitionId is the id of the pinned, versioned config
    assert plain["pipelineDefinitionId"] == stack.mine.get(
        f"/api/v1/executions/{eid}").json()["config_id"]


def test_seed_001_errors_and_authentication(stack: Stack) -> None:
    key, other_key = make_source(stack.mine, "words"), make_source(stack.mine, "words")
    eid = start_via(stack.mine, key, {"text": "a"})["id"]
    direct = start(stack.mine, "words", {"text": "b"})  # not through any source
    path = f"/sources/{key}/v1/pipelines/executions"

    assert_error(stack.mine.get(f"/sources/{other_key}/v1/pipelines/executions/{eid}"), 404,
                 "execution_not_found")
    assert_error(stack.mine.get(f"{path}/{direct}"), 404, "execution_not_found")
    assert_error(stack.mine.get(f"{path}/{uuid.uuid4()}"), 404, "execution_not_found")
    assert_error(stack.mine.get(f"/sources/nope/v1/pipelines/executions/{eid}"), 404,
                 "source_not_found")
    assert_error(stack.theirs.get(f"{path}/{eid}"), 404, "source_not_found")
    invalid = stack.mine.get(f"{path}/{eid}", params={"withOperationBody": "maybe"})
    assert invalid.status_code == 422

    clinia = {"X-Clinia-API-Key": stack.my_key}
    assert stack.anonymous.get(f"{path}/{eid}", headers=clinia).status_code == 200
    assert_error(stack.anonymous.get(f"{path}/{eid}"), 401, "missing_api_key")
    assert_error(stack.anonymous.get(f"{path}/{eid}", headers={"X-Clinia-API-Key": "sl_no"}),
                 401, "invalid_api_key")


def test_seed_001_example_is_valid_against_the_schema_written_from_its_page() -> None:
    example = seed_001_example()
    assert_seed_001(example)
    assert example["steps"][0]["status"] == "PROCESSED"
