"""GET /api/v1/lineage, /lineage/{correlation_id} and /lineage/{correlation_id}/chain
over real HTTP against `stageline serve`, with API keys for two tenants.

Each test starts a server, so the checks are grouped into few tests, each
calling named checks over the same two finished executions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stageline.runtime import Runtime
from stageline.schemas.lineage_queries import LineageAttempts, LineageChain, LineageList
from stageline.store import tenants
from tests.acceptance.conftest import Server, start_server, wait_for_status

CHUNKS = 4
PIPELINE = '''
from stageline import Fatal, Pipeline, StepContext

pipeline = Pipeline("docs")


@pipeline.step(output="document")
def fetch(request, ctx: StepContext):
    ctx.metadata["source"] = request["source"]
    return request


@pipeline.step(output="chunks", fan_out=True)
def segment(document):
    return [{"source": document["source"], "i": i} for i in range(document["chunks"])]


@pipeline.step(output="vectors")
def embed(chunk):
    if chunk["i"] == 2:
        raise Fatal("chunk 2 cannot be embedded")
    return {"i": chunk["i"], "vector": [chunk["i"]]}
'''
Entry = dict[str, Any]


@dataclass
class Clients:
    mine: httpx.Client
    theirs: httpx.Client
    anonymous: httpx.Client


@pytest.fixture
def clients(runtime: Runtime, db_url: str, tmp_path: Path) -> Iterator[Clients]:
    """A server whose default tenant runs `docs`; a second tenant owns nothing."""
    with runtime.db.write() as conn:  # before the server starts: it caches "no keys yet"
        mine, _ = tenants.create_key(conn, "default", "tests")
        theirs, _ = tenants.create_key(conn, "other", "tests")
    pipeline = tmp_path / "docs_pipeline.py"
    pipeline.write_text(PIPELINE)
    server: Server = start_server(pipeline, db_url, str(tmp_path / "data"),
                                  tmp_path / "server.log")
    try:
        with server.client(mine) as a, server.client(theirs) as b, server.client() as c:
            yield Clients(a, b, c)
    finally:
        server.stop()


@pytest.fixture
def runs(clients: Clients) -> dict[str, str]:
    """Two finished executions, tagged by their source document."""
    ids = {}
    for source in ("a.pdf", "b.pdf"):
        created = clients.mine.post("/api/v1/executions", json={
            "pipeline": "docs", "tag": source, "input": {"source": source, "chunks": CHUNKS}})
        assert created.status_code == 201, created.text
        ids[source] = created.json()["id"]
    for execution_id in ids.values():
        wait_for_status(clients.mine, execution_id, {"completed_with_errors"})
    return ids


def lineage(client: httpx.Client, **params: Any) -> list[Entry]:
    response = client.get("/api/v1/lineage", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    LineageList.model_validate_json(response.content)
    body = response.json()
    assert body["next_cursor"] is None
    items: list[Entry] = body["items"]
    return items


def test_list_filters_and_pages(clients: Clients, runs: dict[str, str]) -> None:
    _list_and_seed_000_page_agree(clients, runs)
    _by_execution_route_and_status(clients, runs)
    _roots_only_and_metadata(clients, runs)
    _started_window(clients)
    _pages_have_no_duplicates_and_no_gaps(clients)


def test_attempts_and_chain_through_a_fan_out(clients: Clients, runs: dict[str, str]) -> None:
    _attempts_of_one_message(clients)
    _chain_through_a_fan_out(clients, runs)


def test_errors(clients: Clients, runs: dict[str, str]) -> None:
    _unknown_and_foreign_ids_answer_404(clients, runs)
    _out_of_bounds_requests_answer_422(clients)
    _bad_cursor_and_missing_key(clients)
    _openapi_describes_the_lineage_routes(clients)


def _list_and_seed_000_page_agree(clients: Clients, runs: dict[str, str]) -> None:
    """Both order by (started_at, id), and give each entry in seed 000's shape."""
    for tag, execution_id in runs.items():
        page = clients.mine.get(f"/api/v1/executions/{execution_id}/lineage")
        assert page.status_code == 200, page.text
        assert lineage(clients.mine, execution_id=tag) == page.json()["entries"]


def _by_execution_route_and_status(clients: Clients, runs: dict[str, str]) -> None:
    entries = lineage(clients.mine, execution_id="a.pdf")
    # input, fetch, segment and one attempt per chunk
    assert len(entries) == 3 + CHUNKS
    assert {e["execution_id"] for e in entries} == {runs["a.pdf"]}
    assert lineage(clients.mine, execution_id=runs["a.pdf"]) == entries

    embeds = lineage(clients.mine, execution_id="a.pdf", route_id="embed")
    assert sorted(e["metadata"]["item_key"] for e in embeds) == [
        f"0/{i:05d}" for i in range(CHUNKS)]
    failed = lineage(clients.mine, stage_status="failed")
    assert sorted((e["execution_id"], e["route_id"], e["metadata"]["item_key"])
                  for e in failed) == sorted((r, "embed", "0/00002") for r in runs.values())
    assert failed[0]["error_info"]["type"] == "Fatal"
    either = lineage(clients.mine, execution_id="b.pdf", stage_status=["failed", "initiated"])
    assert sorted(e["stage_status"] for e in either) == ["failed", "initiated"]
    vectors = lineage(clients.mine, stage_name="vectors", stage_status="completed")
    assert len(vectors) == 2 * (CHUNKS - 1)


def _roots_only_and_metadata(clients: Clients, runs: dict[str, str]) -> None:
    roots = lineage(clients.mine, roots_only="true")
    assert sorted(e["execution_id"] for e in roots) == sorted(runs.values())
    assert {(e["stage_status"], e["parent_correlation_id"]) for e in roots} == {
        ("initiated", None)}

    fetched = lineage(clients.mine, meta="source:b.pdf")
    assert [(e["execution_id"], e["route_id"]) for e in fetched] == [(runs["b.pdf"], "fetch")]
    assert fetched[0]["metadata"]["source"] == "b.pdf"
    assert lineage(clients.mine, meta=["source:b.pdf", "outputs:1"]) == fetched
    assert lineage(clients.mine, meta=["source:b.pdf", "outputs:2"]) == []


def _started_window(clients: Clients) -> None:
    everything = lineage(clients.mine)
    middle = everything[len(everything) // 2]["started_at"]
    before = lineage(clients.mine, started_before=middle)
    after = lineage(clients.mine, started_after=middle)
    assert before + after == everything
    assert lineage(clients.mine, started_after="2999-01-01T00:00:00+00:00") == []


def _pages_have_no_duplicates_and_no_gaps(clients: Clients) -> None:
    everything = lineage(clients.mine)
    seen: list[Entry] = []
    cursor: str | None = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = clients.mine.get("/api/v1/lineage", params=params).json()
        assert len(body["items"]) <= 3
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [e["id"] for e in seen] == [e["id"] for e in everything]
    assert len({e["id"] for e in seen}) == len(everything) == 2 * (3 + CHUNKS)


def _attempts_of_one_message(clients: Clients) -> None:
    chunk = _embed_of(clients.mine, "a.pdf", 1)
    response = clients.mine.get(f"/api/v1/lineage/{chunk['correlation_id']}")
    assert response.status_code == 200, response.text
    LineageAttempts.model_validate_json(response.content)
    body = response.json()
    assert body["correlation_id"] == chunk["correlation_id"]
    assert body["total"] == 1 and body["entries"] == [chunk]


def _chain_through_a_fan_out(clients: Clients, runs: dict[str, str]) -> None:
    chunk = _embed_of(clients.mine, "a.pdf", 1)
    response = clients.mine.get(f"/api/v1/lineage/{chunk['correlation_id']}/chain")
    assert response.status_code == 200, response.text
    LineageChain.model_validate_json(response.content)
    body = response.json()
    assert [(e["stage_name"], e["route_id"]) for e in body["ancestors"]] == [
        ("input", None), ("document", "fetch"), ("chunks", "segment")]
    assert body["ancestors"][1]["metadata"]["source"] == "a.pdf"
    assert body["entries"] == [chunk]
    assert body["descendants"] == [] and body["truncated"] is False

    root = body["ancestors"][0]
    down = clients.mine.get(f"/api/v1/lineage/{root['correlation_id']}/chain").json()
    assert down["ancestors"] == [] and down["entries"] == [root]
    assert [e["route_id"] for e in down["descendants"]] == [
        "fetch", "segment", *["embed"] * CHUNKS]
    assert {e["execution_id"] for e in down["descendants"]} == {runs["a.pdf"]}
    cut = clients.mine.get(f"/api/v1/lineage/{root['correlation_id']}/chain",
                           params={"limit": 2}).json()
    assert cut["truncated"] is True and cut["descendants"] == down["descendants"][:2]


def _unknown_and_foreign_ids_answer_404(clients: Clients, runs: dict[str, str]) -> None:
    chunk = _embed_of(clients.mine, "a.pdf", 0)
    cid = chunk["correlation_id"]
    for client, path in [(clients.mine, "/api/v1/lineage/no-such-id"),
                         (clients.mine, "/api/v1/lineage/no-such-id/chain"),
                         (clients.theirs, f"/api/v1/lineage/{cid}"),
                         (clients.theirs, f"/api/v1/lineage/{cid}/chain")]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error_code"] == "lineage_not_found"
        assert set(response.json()) == {"detail", "error_code", "correlation_id", "timestamp"}
    for ref in (runs["a.pdf"], "a.pdf", "00000000-0000-0000-0000-000000000000"):
        client = clients.mine if ref.startswith("0000") else clients.theirs
        response = client.get("/api/v1/lineage", params={"execution_id": ref})
        assert response.status_code == 404, ref
        assert response.json()["error_code"] == "execution_not_found"
    assert lineage(clients.theirs) == []
    assert lineage(clients.theirs, meta="source:a.pdf") == []


OUT_OF_BOUNDS: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/lineage", {"limit": 0}),
    ("/api/v1/lineage", {"limit": 1001}),
    ("/api/v1/lineage", {"meta": "no-colon"}),
    ("/api/v1/lineage", {"meta": [f"k{i}:v" for i in range(11)]}),
    ("/api/v1/lineage", {"stage_status": "exploded"}),
    ("/api/v1/lineage", {"started_after": "2024-01-01T00:00:00"}),  # no UTC offset
    ("/api/v1/lineage", {"unknown_filter": "1"}),
    ("/api/v1/lineage/x", {"limit": 1001}),
    ("/api/v1/lineage/x/chain", {"limit": 0}),
    ("/api/v1/lineage/x/chain", {"limit": 10001}),
    (f"/api/v1/lineage/{'x' * 65}", {}),
]


def _out_of_bounds_requests_answer_422(clients: Clients) -> None:
    for path, params in OUT_OF_BOUNDS:
        response = clients.mine.get(path, params=params)
        assert response.status_code == 422, (path, params, response.text)
        assert isinstance(response.json()["detail"], list)


def _bad_cursor_and_missing_key(clients: Clients) -> None:
    bad = clients.mine.get("/api/v1/lineage", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error_code"] == "invalid_cursor"
    assert clients.anonymous.get("/api/v1/lineage").status_code == 401


def _openapi_describes_the_lineage_routes(clients: Clients) -> None:
    spec = clients.mine.get("/openapi.json").json()
    assert {"/api/v1/lineage", "/api/v1/lineage/{correlation_id}",
            "/api/v1/lineage/{correlation_id}/chain"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["LineageChain"]["description"].startswith("Where an item came from")
    params = {p["name"] for p in spec["paths"]["/api/v1/lineage"]["get"]["parameters"]}
    assert {"execution_id", "route_id", "stage_name", "stage_status", "roots_only", "meta",
            "started_after", "started_before", "limit", "cursor"} == params


def _embed_of(client: httpx.Client, tag: str, chunk: int) -> Entry:
    entries = lineage(client, execution_id=tag, route_id="embed")
    return next(e for e in entries if e["metadata"]["item_key"] == f"0/{chunk:05d}")
