"""The executions API over real HTTP: start, read, list, lineage, cancel, review.

One `stageline serve` process serves the whole module (starting one costs
seconds); every test makes its own executions with its own tags, so the tests
do not depend on each other or on their order. Response bodies are checked
against JSON schemas written from the seed pages (000, 002, 004).
"""

from __future__ import annotations

import base64
import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.acceptance.conftest import EXAMPLES, Server, start_server, wait_for_status
from tests.conftest import scratch_database

API = "/api/v1/executions"
MAX_BODY = 2048
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"

# --- JSON schemas written from the seed pages -------------------------------------------

SEED_004_STATUSES = ["pending", "running", "completed", "failed", "cancelled"]
STAGE_STATUSES = ["pending", "initiated", "processing", "completed", "failed", "cancelled"]
TIME = {"type": "string", "format": "date-time", "pattern": RFC3339}
UUID_TEXT = {"type": "string", "format": "uuid"}
TEXT_OR_NULL = {"type": ["string", "null"]}
TIME_OR_NULL = {"anyOf": [{"type": "null"}, TIME]}
UUID_OR_NULL = {"anyOf": [{"type": "null"}, UUID_TEXT]}

# Seed 004 (GET /api/v1/executions/{execution_id}): every field named on the page.
SEED_004_PROPERTIES: dict[str, Any] = {
    "created_at": TIME, "id": UUID_TEXT, "payload": {},
    "retry_count": {"type": "integer", "minimum": 0},
    "status": {"enum": SEED_004_STATUSES}, "workflow_id": {"type": "string"},
    "assigned_to_worker": TEXT_OR_NULL, "batch_id": TEXT_OR_NULL,
    "cancelled_at": TIME_OR_NULL, "cancelled_by": TEXT_OR_NULL, "completed_at": TIME_OR_NULL,
    "concurrency_key": TEXT_OR_NULL, "deployment_id": TEXT_OR_NULL, "error": TEXT_OR_NULL,
    "output_schema_name": TEXT_OR_NULL, "parent_execution_id": UUID_OR_NULL,
    "queue_name": TEXT_OR_NULL, "result": {}, "root_execution_id": UUID_OR_NULL,
    "run_timeout_seconds": {"type": ["integer", "null"]}, "session_id": TEXT_OR_NULL,
    "started_at": TIME_OR_NULL, "step_key": TEXT_OR_NULL, "user_id": TEXT_OR_NULL,
}
# Seed 002's ExecutionResponse fields; where 002 and 004 share a field (id, status,
# started_at, completed_at, parent_execution_id) this endpoint is seed 004's, so 004's
# shape wins (SPEC.md): `status` in 004's vocabulary, `started_at` null until it starts.
SEED_002_PROPERTIES: dict[str, Any] = {
    "config_id": UUID_TEXT,
    "replay_source": {"enum": [None, "storage", "lineage", "manual"]},
    "tag": TEXT_OR_NULL,
}
EXECUTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*SEED_004_PROPERTIES, *SEED_002_PROPERTIES],
    "properties": {**SEED_004_PROPERTIES, **SEED_002_PROPERTIES},
}

# Seed 000: ExecutionLineageResponse and LineageEntryResponse.
LINEAGE_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "correlation_id", "stage_name", "stage_status", "started_at"],
    "properties": {
        "id": UUID_TEXT, "correlation_id": {"type": "string"},
        "parent_correlation_id": TEXT_OR_NULL, "replay_batch_id": TEXT_OR_NULL,
        "execution_id": UUID_OR_NULL, "route_id": TEXT_OR_NULL, "adapter_name": TEXT_OR_NULL,
        "adapter_index": {"type": ["integer", "null"]}, "stage_name": {"type": "string"},
        "stage_status": {"enum": STAGE_STATUSES}, "stage_input_hash": TEXT_OR_NULL,
        "started_at": TIME, "completed_at": TIME_OR_NULL,
        "duration_ms": {"type": ["number", "null"]},
        "metadata": {"type": ["object", "null"]}, "error_info": {"type": ["object", "null"]},
    },
}
LINEAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["total", "execution_id", "entries"],
    "properties": {
        "total": {"type": "integer", "minimum": 0}, "execution_id": UUID_TEXT,
        "entries": {"type": "array", "items": LINEAGE_ENTRY_SCHEMA},
    },
}

# Seed 000: ErrorResponse (error_code is always given by Stageline) and HTTPValidationError.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["detail", "error_code", "correlation_id", "timestamp"],
    "properties": {
        "detail": {"type": "string"}, "error_code": {"type": "string", "minLength": 1},
        "correlation_id": TEXT_OR_NULL, "timestamp": TIME,
    },
}
VALIDATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
            "msg": {"type": "string"}, "type": {"type": "string"}, "ctx": {"type": "object"},
        },
    }}},
}


def assert_matches(schema: dict[str, Any], body: Any) -> None:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, errors


def assert_error(response: httpx.Response, status: int, error_code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert_matches(ERROR_SCHEMA, body)
    if error_code is not None:
        assert body["error_code"] == error_code


def assert_invalid(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert_matches(VALIDATION_SCHEMA, body)
    details: list[dict[str, Any]] = body["detail"]
    return details


def request_id(response: httpx.Response) -> str:
    return response.headers.get_list("x-request-id")[0]


# --- the module's server ---------------------------------------------------------------

# examples/words.py, plus a pipeline with a review gate and one whose only step
# waits for a file, so a test can cancel it mid-attempt and then let it drain.
PIPELINES = textwrap.dedent('''
    from __future__ import annotations

    import time
    from pathlib import Path

    from stageline import Pipeline
    from stageline.loader import load

    words = load(WORDS_FILE)[0]

    reviewed = Pipeline("reviewed")


    @reviewed.step(output="upper", review=True)
    def shout(doc: dict[str, str]) -> str:
        return doc["text"].upper()


    @reviewed.step(output="length")
    def measure(text: str) -> int:
        return len(text)


    gated = Pipeline("gated")


    @gated.step(output="released")
    def wait_for_release(doc: dict[str, str]) -> str:
        deadline = time.monotonic() + 30
        while not Path(doc["release"]).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("never released")
            time.sleep(0.02)
        return "released"
''')




@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("executions_http")
    pipelines = directory / "pipelines.py"
    pipelines.write_text(PIPELINES.replace("WORDS_FILE", repr(str(EXAMPLES / "words.py"))))
    with scratch_database(directory) as db_url:
        server = start_server(pipelines, db_url, str(directory / "data"),
                              directory / "server.log",
                              env={"STAGELINE_MAX_BODY_BYTES": str(MAX_BODY)})
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def client(served: Server) -> Iterator[httpx.Client]:
    """Shared by the module's tests: it keeps no state between requests (no cookies)."""
    with served.client() as http:
        yield http


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post(API, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def finished(client: httpx.Client, execution_id: str, statuses: set[str]) -> dict[str, Any]:
    return dict(wait_for_status(client, execution_id, statuses))


def run_words(client: httpx.Client, words_text: str = "a b\nc", **body: Any) -> dict[str, Any]:
    created = start(client, pipeline="words", input={"text": words_text}, **body)
    return finished(client, created["id"], {"completed"})


# --- POST /api/v1/executions -------------------------------------------------------------

def test_start_by_name_answers_seed_004_and_002_fields(client: httpx.Client) -> None:
    tag = unique("start")
    payload = {"text": "one two\nthree", "nested": {"list": [1, 2.5, None, True]}}
    response = client.post(API, json={"pipeline": "words", "input": payload, "tag": tag,
                                      "metadata": {"team": "docs"}, "user_id": "u-1"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert_matches(EXECUTION_SCHEMA, body)
    assert body["payload"] == payload
    assert body["tag"] == tag
    assert body["workflow_id"] == "words"
    assert body["retry_count"] == 0
    assert body["user_id"] == "u-1"
    assert body["root_execution_id"] == body["id"]
    assert body["parent_execution_id"] is None
    assert body["completed_at"] is None


def test_start_by_name_and_version(client: httpx.Client) -> None:
    body = start(client, pipeline="words", version=1, input={"text": "a"})
    assert body["pipeline_version"] == 1
    assert_error(client.post(API, json={"pipeline": "words", "version": 999, "input": {}}),
                 404, "pipeline_not_found")


def test_start_by_config_id(client: httpx.Client) -> None:
    first = start(client, pipeline="words", input={"text": "a"})
    again = start(client, config_id=first["config_id"], input={"text": "b c"})
    assert again["config_id"] == first["config_id"]
    assert again["workflow_id"] == "words"
    assert finished(client, again["id"], {"completed"})["result"] == 2


@pytest.mark.parametrize("body", [
    {"pipeline": "no-such-pipeline", "input": {}},
    {"config_id": str(uuid.uuid4()), "input": {}},
], ids=["pipeline", "config_id"])
def test_start_unknown_target_is_404(client: httpx.Client, body: dict[str, Any]) -> None:
    assert_error(client.post(API, json=body), 404)


def test_duplicate_tag_is_409_and_keeps_the_first(client: httpx.Client) -> None:
    tag = unique("dup")
    first = start(client, pipeline="words", input={"text": "a"}, tag=tag)
    assert_error(client.post(API, json={"pipeline": "words", "input": {}, "tag": tag}),
                 409, "tag_in_use")
    assert client.get(f"{API}/{tag}").json()["id"] == first["id"]


@pytest.mark.parametrize(("body", "field"), [
    ({"pipeline": "words", "input": {}, "unknown_field": 1}, "unknown_field"),
    ({"pipeline": "words", "config_id": str(uuid.uuid4())}, None),
    ({"input": {"text": "a"}}, None),
    ({"pipeline": 5}, "pipeline"),
    ({"pipeline": "words", "version": "latest"}, "version"),
    ({"config_id": "not-a-uuid"}, "config_id"),
    ({"pipeline": "words", "tag": ["a"]}, "tag"),
    ({"pipeline": "words", "metadata": "text"}, "metadata"),
    ({"pipeline": "words", "tag": "x" * 201}, "tag"),
    ({"pipeline": "words", "tag": ""}, "tag"),
], ids=["unknown-field", "pipeline-and-config", "neither", "pipeline-int", "version-text",
        "config-id-text", "tag-list", "metadata-text", "tag-too-long", "tag-empty"])
def test_bad_body_is_422(client: httpx.Client, body: dict[str, Any], field: str | None) -> None:
    details = assert_invalid(client.post(API, json=body))
    if field is not None:
        assert any(d["loc"][-1] == field for d in details), details


def test_malformed_json_is_422(client: httpx.Client) -> None:
    assert_invalid(client.post(API, content=b'{"pipeline": "words",',
                               headers={"content-type": "application/json"}))


def test_same_idempotency_key_answers_the_same_execution(client: httpx.Client) -> None:
    key = unique("idem")
    first = client.post(API, json={"pipeline": "words", "input": {"text": "a"},
                                   "idempotency_key": key})
    second = client.post(API, json={"pipeline": "words", "input": {"text": "a"},
                                    "idempotency_key": key})
    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert_matches(EXECUTION_SCHEMA, second.json())
    listed = client.get(API, params={"pipeline": "words", "limit": 500}).json()["items"]
    assert [e["id"] for e in listed].count(first.json()["id"]) == 1


def oversized_body(tag: str) -> bytes:
    body = json.dumps({"pipeline": "words", "input": {"text": "x " * MAX_BODY}, "tag": tag})
    assert len(body) > MAX_BODY
    return body.encode()


def test_body_over_the_limit_is_413_and_creates_nothing(client: httpx.Client) -> None:
    tag = unique("big")
    response = client.post(API, content=oversized_body(tag),
                           headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large")
    assert_error(client.get(f"{API}/{tag}"), 404, "execution_not_found")


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    tag = unique("chunked")

    def chunks() -> Iterator[bytes]:
        data = oversized_body(tag)
        yield data[:1000]
        yield data[1000:]

    response = client.post(API, content=chunks(), headers={"content-type": "application/json"})
    assert_error(client.get(f"{API}/{tag}"), 404)
    assert_error(response, 413, "payload_too_large")


# --- GET /api/v1/executions/{id} ---------------------------------------------------------

def test_get_by_id_and_by_tag(client: httpx.Client) -> None:
    tag = unique("get")
    created = start(client, pipeline="words", input={"text": "a"}, tag=tag)
    by_id = client.get(f"{API}/{created['id']}")
    by_tag = client.get(f"{API}/{tag}")
    assert by_id.status_code == by_tag.status_code == 200
    assert_matches(EXECUTION_SCHEMA, by_id.json())
    assert by_id.json()["id"] == by_tag.json()["id"] == created["id"]
    assert by_tag.json()["tag"] == tag


@pytest.mark.parametrize("ref", [str(uuid.uuid4()), "no-such-tag"], ids=["id", "tag"])
def test_get_unknown_is_404(client: httpx.Client, ref: str) -> None:
    assert_error(client.get(f"{API}/{ref}"), 404, "execution_not_found")


def test_completed_execution_has_result_and_timings(client: httpx.Client) -> None:
    done = run_words(client, "one two\nthree four five\nsix")
    assert_matches(EXECUTION_SCHEMA, done)
    assert done["status"] == "completed"
    assert done["result"] == 6
    assert done["root_execution_id"] == done["id"]
    assert done["error"] is None
    created, started, completed = (datetime.fromisoformat(done[k])
                                   for k in ("created_at", "started_at", "completed_at"))
    assert created <= started <= completed
    assert [s["status"] for s in done["steps"]] == ["completed"] * 3


# --- GET /api/v1/executions --------------------------------------------------------------

def list_ids(client: httpx.Client, **params: Any) -> list[str]:
    response = client.get(API, params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_list_is_newest_first(client: httpx.Client) -> None:
    ids = [start(client, pipeline="words", input={"text": "a"})["id"] for _ in range(3)]
    response = client.get(API, params={"limit": 500})
    items = response.json()["items"]
    for item in items:
        assert_matches(EXECUTION_SCHEMA, item)
    listed = [item["id"] for item in items]
    assert [i for i in listed if i in ids] == ids[::-1]
    stamps = [datetime.fromisoformat(item["created_at"]) for item in items]
    assert stamps == sorted(stamps, reverse=True)


def test_list_filters_by_status_pipeline_and_tag(client: httpx.Client) -> None:
    tag = unique("filter")
    done = run_words(client, tag=tag)
    review = start(client, pipeline="reviewed", input={"text": "abc"})
    finished(client, review["id"], {"in_review"})
    assert list_ids(client, tag=tag) == [done["id"]]
    assert list_ids(client, tag=unique("none")) == []
    completed = client.get(API, params={"status": "completed", "limit": 500}).json()["items"]
    assert done["id"] in [e["id"] for e in completed]
    assert {e["stageline_status"] for e in completed} == {"completed"}
    in_review = list_ids(client, status="in_review")
    assert review["id"] in in_review and done["id"] not in in_review
    both = list_ids(client, status=["completed", "in_review"])
    assert {done["id"], review["id"]} <= set(both)
    assert review["id"] in list_ids(client, pipeline="reviewed")
    assert done["id"] not in list_ids(client, pipeline="reviewed")
    assert done["id"] in list_ids(client, pipeline="words")
    assert_invalid(client.get(API, params={"status": "not-a-status"}))


def page_through(client: httpx.Client, limit: int, between_pages: Any = None,
                 **params: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get(API, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        if between_pages is not None:
            between_pages()
            between_pages = None
        assert len(pages) < 100, "pagination does not end"


def test_cursor_pagination_is_stable_and_has_no_duplicates(client: httpx.Client) -> None:
    created = [start(client, pipeline="words", input={"text": "p"})["id"] for _ in range(25)]
    before = list_ids(client, pipeline="words")
    late: list[str] = []

    def create_more() -> None:  # newer than the cursor: must not show up on later pages
        late.extend(start(client, pipeline="words", input={"text": "q"})["id"]
                    for _ in range(2))

    pages = page_through(client, 10, create_more, pipeline="words")
    seen = [i for page in pages for i in page]
    assert len(pages) >= 3
    assert all(len(page) == 10 for page in pages[:-1])
    assert len(seen) == len(set(seen))
    assert seen == before
    assert not set(late) & set(seen)
    assert [i for i in seen if i in created] == created[::-1]


@pytest.mark.parametrize("cursor", ["garbage!!", "Zm9v", "MjAyNi0wMS0wMXxub3QtYS11dWlk"],
                         ids=["not-base64", "no-separator", "bad-uuid"])
def test_invalid_cursor_is_400(client: httpx.Client, cursor: str) -> None:
    assert_error(client.get(API, params={"cursor": cursor}), 400, "invalid_cursor")


@pytest.mark.parametrize(("limit", "status"), [(0, 422), (501, 422), (-1, 422), (1, 200),
                                               (500, 200)])
def test_list_limit_bounds(client: httpx.Client, limit: int, status: int) -> None:
    response = client.get(API, params={"limit": limit})
    if status == 422:
        assert_invalid(response)
    else:
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) <= limit


# --- GET /api/v1/executions/{id}/lineage (seed 000) --------------------------------------

def lineage(client: httpx.Client, ref: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"{API}/{ref}/lineage", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_matches(LINEAGE_SCHEMA, body)
    return body


def test_lineage_matches_seed_000_and_is_ordered_by_started_at(client: httpx.Client) -> None:
    tag = unique("lineage")
    done = run_words(client, "a b\nc d\ne", tag=tag)
    body = lineage(client, done["id"])
    assert body["execution_id"] == done["id"]
    assert body["total"] == len(body["entries"]) > 0
    assert all(e["execution_id"] == done["id"] for e in body["entries"])
    started = [datetime.fromisoformat(e["started_at"]) for e in body["entries"]]
    assert started == sorted(started)
    assert lineage(client, tag) == body


def test_lineage_total_counts_entries_beyond_the_limit(client: httpx.Client) -> None:
    done = run_words(client, "a\nb\nc\nd")
    everything = lineage(client, done["id"])
    cut = lineage(client, done["id"], limit=2)
    assert everything["total"] > 2
    assert cut["total"] == everything["total"]
    assert cut["entries"] == everything["entries"][:2]


@pytest.mark.parametrize("limit", [0, -5, 10001, "many"])
def test_lineage_limit_out_of_bounds_is_422(client: httpx.Client, limit: int | str) -> None:
    done = start(client, pipeline="words", input={"text": "a"})
    details = assert_invalid(client.get(f"{API}/{done['id']}/lineage", params={"limit": limit}))
    assert details[0]["loc"] == ["query", "limit"]


def test_lineage_limit_bounds_are_inclusive(client: httpx.Client) -> None:
    done = run_words(client, "a")
    assert lineage(client, done["id"], limit=1)["entries"][0]["stage_status"] == "initiated"
    assert len(lineage(client, done["id"], limit=10000)["entries"]) == 4


@pytest.mark.parametrize("ref", [str(uuid.uuid4()), "no-such-tag"], ids=["id", "tag"])
def test_lineage_of_unknown_execution_is_404(client: httpx.Client, ref: str) -> None:
    assert_error(client.get(f"{API}/{ref}/lineage"), 404, "execution_not_found")


def test_every_item_of_every_stage_has_a_completed_lineage_entry(client: httpx.Client) -> None:
    lines = ["one", "two words", "three more words", "", "five"]
    done = run_words(client, "\n".join(lines))
    entries = lineage(client, done["id"])["entries"]
    output_of = {s["name"]: s["output"] for s in done["config_snapshot"]["steps"]}
    for step in done["steps"]:
        attempts = [e for e in entries if e["route_id"] == step["step_type"]]
        completed = [e for e in attempts if e["stage_status"] == "completed"]
        assert len(completed) == step["completed"] > 0, step
        assert len(attempts) == step["attempts"], step
        assert {e["stage_name"] for e in attempts} == {output_of[step["step_type"]]}
        keys = [e["metadata"]["item_key"] for e in completed]
        assert len(keys) == len(set(keys)), keys
    counted = next(s for s in done["steps"] if s["step_type"] == "count")
    assert counted["completed"] == len(lines)
    roots = [e for e in entries if e["route_id"] is None]
    assert [(e["stage_name"], e["stage_status"]) for e in roots] == [("input", "initiated")]
    known = {e["correlation_id"] for e in entries}
    assert all(e["parent_correlation_id"] in known for e in entries
               if e["parent_correlation_id"] is not None)


# --- cancel and review actions ------------------------------------------------------------

def test_cancel_drains_the_attempt_in_flight_then_cancels(client: httpx.Client,
                                                           tmp_path: Path) -> None:
    release = tmp_path / "release"
    created = start(client, pipeline="gated", input={"release": str(release)})
    try:
        deadline = time.monotonic() + 30
        while client.get(f"{API}/{created['id']}").json()["steps"][0]["status"] != "running":
            assert time.monotonic() < deadline, "the gated step never started"
            time.sleep(0.05)
        response = client.post(f"{API}/{created['id']}/cancel",
                               json={"cancelled_by": "alice"})
        assert response.status_code == 200, response.text
        assert_matches(EXECUTION_SCHEMA, response.json())
        assert response.json()["stageline_status"] == "cancelling"
        assert response.json()["status"] == "running"
    finally:
        release.touch()
    done = finished(client, created["id"], {"cancelled"})
    assert done["status"] == "cancelled"
    assert done["cancelled_by"] == "alice"
    assert done["cancelled_at"] is not None
    assert_error(client.post(f"{API}/{created['id']}/cancel"), 409, "invalid_state")


def test_cancel_completed_or_unknown_execution(client: httpx.Client) -> None:
    done = run_words(client)
    assert_error(client.post(f"{API}/{done['id']}/cancel"), 409, "invalid_state")
    assert client.get(f"{API}/{done['id']}").json()["stageline_status"] == "completed"
    assert_error(client.post(f"{API}/{uuid.uuid4()}/cancel"), 404, "execution_not_found")
    assert_invalid(client.post(f"{API}/{done['id']}/cancel", json={"reason": "x"}))


def in_review(client: httpx.Client, words_text: str, tag: str | None = None) -> dict[str, Any]:
    created = start(client, pipeline="reviewed", input={"text": words_text}, tag=tag)
    body = finished(client, created["id"], {"in_review"})
    assert body["status"] == "running"
    gate, after = body["steps"]
    assert gate["status"] == "in_review" and gate["completed"] == 1
    assert after["status"] in ("pending", "running")  # its messages wait behind the gate
    assert after["attempts"] == after["completed"] == 0
    return body


def test_approve_resumes_the_execution(client: httpx.Client) -> None:
    tag = unique("approve")
    waiting = in_review(client, "abcd", tag)
    response = client.post(f"{API}/{tag}/actions",
                           json={"action": "approve", "description": "looks right"})
    assert response.status_code == 200, response.text
    assert_matches(EXECUTION_SCHEMA, response.json())
    done = finished(client, waiting["id"], {"completed"})
    assert done["result"] == 4
    assert_error(client.post(f"{API}/{tag}/actions", json={"action": "approve"}),
                 409, "not_in_review")


def test_reject_drops_the_execution(client: httpx.Client) -> None:
    waiting = in_review(client, "abc")
    response = client.post(f"{API}/{waiting['id']}/actions",
                           json={"action": "reject", "description": "wrong input"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stageline_status"] == "dropped"
    assert body["status"] == "cancelled"
    assert [s["status"] for s in body["steps"]] == ["cancelled", "cancelled"]
    time.sleep(0.3)  # nothing may run after a reject
    assert client.get(f"{API}/{waiting['id']}").json()["result"] is None
    assert_error(client.post(f"{API}/{waiting['id']}/actions", json={"action": "reject"}),
                 409, "not_in_review")


def test_actions_on_execution_not_in_review_is_409(client: httpx.Client) -> None:
    done = run_words(client)
    assert_error(client.post(f"{API}/{done['id']}/actions", json={"action": "approve"}),
                 409, "not_in_review")
    assert_error(client.post(f"{API}/{uuid.uuid4()}/actions", json={"action": "approve"}),
                 404, "execution_not_found")


@pytest.mark.parametrize("body", [{"action": "maybe"}, {}, {"action": "approve", "x": 1}],
                         ids=["unknown-action", "no-action", "unknown-field"])
def test_bad_action_body_is_422(client: httpx.Client, body: dict[str, Any]) -> None:
    waiting = in_review(client, "ab")
    assert_invalid(client.post(f"{API}/{waiting['id']}/actions", json=body))
    assert client.get(f"{API}/{waiting['id']}").json()["stageline_status"] == "in_review"


# --- bad input answers 4xx, never 500 (SPEC.md, "Promises") -----------------------------
# A 500 makes the server close the connection: these tests use a client of their own.

def test_cursor_with_a_naive_timestamp_is_400(served: Server) -> None:
    raw = f"2030-01-01T00:00:00|{uuid.uuid4()}".encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with served.client() as fresh:
        assert_error(fresh.get(API, params={"cursor": cursor}), 400, "invalid_cursor")


def test_input_with_integers_beyond_64_bits_is_not_a_500(served: Server) -> None:
    payload = {"text": "a", "n": 2**70}
    with served.client() as fresh:
        response = fresh.post(API, json={"pipeline": "words", "input": payload})
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        assert response.json()["payload"] == payload


def test_input_with_non_finite_numbers_is_422(served: Server) -> None:
    body = b'{"pipeline": "words", "input": {"text": "a", "n": NaN}}'
    with served.client() as fresh:
        response = fresh.post(API, content=body, headers={"content-type": "application/json"})
    assert_invalid(response)


NUL_REQUESTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "tag": ("POST", API, {"json": {"pipeline": "words", "input": {}, "tag": "a\x00b"}}),
    "input": ("POST", API, {"json": {"pipeline": "words", "input": {"text": "a\x00"}}}),
    "metadata": ("POST", API, {"json": {"pipeline": "words", "metadata": {"k": "\x00"}}}),
    "path": ("GET", f"{API}/a%00b", {}),
    "tag-filter": ("GET", API, {"params": {"tag": "a\x00b"}}),
}


@pytest.mark.parametrize("case", list(NUL_REQUESTS))
def test_nul_characters_are_not_a_500(served: Server, case: str) -> None:
    method, path, options = NUL_REQUESTS[case]
    with served.client() as fresh:
        response = fresh.request(method, path, **options)
    assert response.status_code < 500, response.text


def test_a_request_id_that_is_not_utf8_is_not_a_500(served: Server) -> None:
    with served.client() as fresh:
        response = fresh.get(API, headers={b"X-Request-ID": b"\xff\xfe"})
    assert response.status_code == 200, response.text
    assert request_id(response)


# --- X-Request-ID ------------------------------------------------------------------------

def test_request_id_is_echoed_when_sent(client: httpx.Client) -> None:
    response = client.get(API, headers={"X-Request-ID": "req-123"})
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == ["req-123"]


def test_request_id_is_generated_when_not_sent(client: httpx.Client) -> None:
    first, second = client.get(API), client.get(API)
    ids = [r.headers.get("x-request-id") for r in (first, second)]
    assert all(ids) and ids[0] != ids[1]


def test_error_responses_carry_one_request_id_header(client: httpx.Client) -> None:
    response = client.get(f"{API}/{uuid.uuid4()}", headers={"X-Request-ID": "once"})
    assert response.headers.get_list("x-request-id") == ["once"]


@pytest.mark.parametrize("sent", [None, "trace-abc-42"], ids=["generated", "sent"])
def test_error_bodies_carry_the_request_id(client: httpx.Client, sent: str | None) -> None:
    headers = {"X-Request-ID": sent} if sent else {}
    responses = [
        client.get(f"{API}/{uuid.uuid4()}", headers=headers),
        client.get(API, params={"cursor": "garbage!!"}, headers=headers),
        client.post(API, json={"pipeline": "nope"}, headers=headers),
        client.post(API, content=oversized_body("x"), headers=headers),
    ]
    for response in responses:
        assert_matches(ERROR_SCHEMA, response.json())
        assert response.json()["correlation_id"] == request_id(response)
    ids = [request_id(r) for r in responses]
    if sent:
        assert ids == [sent] * len(ids)
    else:
        assert len(set(ids)) == len(ids)  # one per request
    invalid = client.post(API, json={}, headers=headers)
    assert_invalid(invalid)
    if sent:
        assert request_id(invalid) == sent
