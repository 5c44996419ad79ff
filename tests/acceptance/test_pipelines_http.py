"""Pipeline configs over HTTP: validate, create, version, list, read, archive.

Every test talks to a real `stageline serve examples/words.py`. Configs that
run use the handlers of that file (`stageline_user_words:split`, ...), which
the server's worker knows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stageline.store import migrate, tenants
from stageline.store.db import Database
from tests.acceptance.conftest import EXAMPLES, Server, start_server, wait_for_status

WORDS = "stageline_user_words"
YAML_TYPES = ["application/yaml", "application/x-yaml", "text/yaml; charset=utf-8"]


def words_config(name: str = "counting", *, review: bool = False,
                 retries: int = 3) -> dict[str, Any]:
    """The graph of examples/words.py, written as a config."""
    return {"name": name, "description": "count the words of a text", "steps": [
        {"name": "split", "input": "input", "output": "lines", "fan_out": True,
         "review": review, "adapters": [{"name": f"{WORDS}:split"}]},
        {"name": "count", "input": "lines", "output": "counted", "retries": retries,
         "adapters": [{"name": f"{WORDS}:count"}]},
        {"name": "total", "input": "counted", "output": "total", "collect": True,
         "adapters": [{"name": f"{WORDS}:total"}]},
    ]}


def library_config(name: str = "docs") -> dict[str, Any]:
    """A config of shipped adapters only."""
    return {"name": name, "steps": [
        {"name": "to_markdown", "input": "input", "output": "markdown",
         "adapters": [{"name": "load_document"}, {"name": "html_to_markdown"}]},
        {"name": "segment", "input": "markdown", "output": "markdown_segmented",
         "fan_out": True, "adapters": [{"name": "segment_markdown",
                                         "params": {"max_tokens": 50}}]},
        {"name": "embedding_generator", "input": "markdown_segmented", "output": "embeddings",
         "adapters": [{"name": "embed", "params": {"model": "hashing", "dim": 64}}]},
    ]}


def post_yaml(client: httpx.Client, url: str, config: dict[str, Any],
              content_type: str = "application/yaml") -> httpx.Response:
    return client.post(url, content=yaml.safe_dump(config, sort_keys=False),
                       headers={"Content-Type": content_type})


def codes(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["code"], f["path"]) for f in body["findings"]]


def assert_error(response: httpx.Response, status: int, error_code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error_code"] == error_code
    assert body["detail"] and body["timestamp"] and body["correlation_id"]
    return body


def start(client: httpx.Client, pipeline: str, version: int | None = None,
          text: str = "a b\nc") -> httpx.Response:
    body: dict[str, Any] = {"pipeline": pipeline, "input": {"text": text}}
    if version is not None:
        body["version"] = version
    return client.post("/api/v1/executions", json=body)


# --- validate ---------------------------------------------------------------------------


def test_validate_reports_findings_and_saves_nothing(server: Server) -> None:
    broken = words_config()
    broken["steps"][1]["retries"] = -1
    broken["steps"][2]["colect"] = True
    broken["steps"][2]["adapters"][0]["name"] = "no_such_adapter"
    with server.client() as client:
        report = client.post("/api/v1/pipelines/validate", json=broken)
        assert report.status_code == 200, report.text
        assert report.json()["valid"] is False
        assert codes(report.json()) == [
            ("invalid_value", "steps[1].retries"),
            ("unknown_field", "steps[2].colect"),
            ("unknown_adapter", "steps[2].adapters[0].name"),
        ]
        assert all(f["message"] and f["remedy"] for f in report.json()["findings"])

        valid = post_yaml(client, "/api/v1/pipelines/validate", words_config())
        assert valid.json() == {"valid": True, "findings": []}
        listed = client.get("/api/v1/pipelines").json()["items"]
    assert [p["name"] for p in listed] == ["words"]  # only the server's own pipeline


def test_validate_reports_parse_and_graph_errors(server: Server) -> None:
    cycle = words_config()
    cycle["steps"][0]["input"] = "total"
    with server.client() as client:
        bad_yaml = client.post("/api/v1/pipelines/validate", content="name: [x",
                               headers={"Content-Type": "application/yaml"})
        bad_json = client.post("/api/v1/pipelines/validate", content="{",
                               headers={"Content-Type": "application/json"})
        graph = client.post("/api/v1/pipelines/validate", json=cycle)
        not_object = client.post("/api/v1/pipelines/validate", json=[1, 2])
    assert codes(bad_yaml.json()) == [("invalid_yaml", "")]
    assert codes(bad_json.json()) == [("invalid_json", "")]
    assert {code for code, _ in codes(graph.json())} == {"cycle"}
    assert codes(not_object.json()) == [("invalid_type", "")]


def test_validate_checks_item_schemas(server: Server) -> None:
    invalid = words_config()
    invalid["steps"][1]["input_schema"] = {"type": "str"}
    disagreeing = words_config()
    disagreeing["steps"][0]["output_schema"] = {"type": "string"}
    disagreeing["steps"][1]["input_schema"] = {"type": "object"}
    with server.client() as client:
        report = post_yaml(client, "/api/v1/pipelines/validate", invalid).json()
        warned = client.post("/api/v1/pipelines/validate", json=disagreeing).json()
        refused = client.post("/api/v1/pipelines", json=invalid)
        missing = client.get("/api/v1/pipelines/counting")
    assert report["valid"] is False
    assert codes(report) == [("invalid_item_schema", "steps[1].input_schema")]
    assert report["findings"][0]["severity"] == "error"
    assert warned["valid"] is True
    assert [(f["code"], f["path"], f["severity"]) for f in warned["findings"]] == [
        ("stage_type_mismatch", "steps[1].input_schema", "warning")]
    body = assert_error(refused, 422, "invalid_config")
    assert codes(body) == [("invalid_item_schema", "steps[1].input_schema")]
    assert_error(missing, 404, "pipeline_not_found")


def test_declared_item_schemas_are_part_of_the_version(server: Server) -> None:
    config = words_config("schemas")
    with server.client() as client:
        first = client.post("/api/v1/pipelines", json=config).json()
        assert "input_schema" not in first["config_snapshot"]["steps"][1]
        config["steps"][1]["input_schema"] = {"type": "string"}
        second = client.post("/api/v1/pipelines/schemas/versions", json=config)
        again = client.post("/api/v1/pipelines/schemas/versions", json=config)
    assert second.status_code == 201 and second.json()["version"] == 2
    assert second.json()["config_snapshot"]["steps"][1]["input_schema"] == {"type": "string"}
    assert again.status_code == 200 and again.json()["version"] == 2


# --- create -----------------------------------------------------------------------------


def test_create_from_json(server: Server) -> None:
    with server.client() as client:
        created = client.post("/api/v1/pipelines", json=library_config())
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["pipeline"], body["version"]) == ("docs", 1)
        assert body["config_snapshot"]["steps"][1]["adapters"][0] == {
            "name": "segment_markdown", "params": {"max_tokens": 50}}
        assert body["created_at"].endswith("Z")
        by_id = client.get(f"/api/v1/configs/{body['config_id']}")
    assert by_id.json() == body


def test_create_from_yaml(server: Server) -> None:
    with server.client() as client:
        created = [post_yaml(client, "/api/v1/pipelines", words_config(f"yaml{i}"), media)
                   for i, media in enumerate(YAML_TYPES)]
        from_json = client.post("/api/v1/pipelines", json=words_config("json")).json()
    for response in created:
        assert response.status_code == 201, response.text
        snapshot = response.json()["config_snapshot"]
        assert snapshot == {**from_json["config_snapshot"], "name": snapshot["name"]}
    assert from_json["config_snapshot"]["steps"][0]["adapters"] == [
        {"name": f"{WORDS}:split", "params": {}}]


def test_unknown_adapter_is_refused_and_nothing_is_created(server: Server) -> None:
    config = library_config()
    config["steps"][1]["adapters"][0]["name"] = "segment_markdwn"
    config["steps"][2]["adapters"].append({"name": "nowhere.at_all:embed"})
    with server.client() as client:
        refused = client.post("/api/v1/pipelines", json=config)
        missing = client.get("/api/v1/pipelines/docs")
    body = assert_error(refused, 422, "invalid_config")
    assert body["valid"] is False
    assert codes(body) == [("unknown_adapter", "steps[1].adapters[0].name"),
                           ("unknown_adapter", "steps[2].adapters[1].name")]
    assert "segment_markdown" in body["findings"][0]["remedy"]
    assert_error(missing, 404, "pipeline_not_found")


def test_import_paths_are_refused_unless_their_module_is_allowed(server: Server) -> None:
    config = library_config()
    config["steps"][2]["adapters"].append({"name": "stageline.adapters.library:embed_text"})
    dangerous = {**config, "name": "shell", "steps": [
        {**config["steps"][0], "adapters": [{"name": "os:system"}]}]}
    with server.client() as client:
        refused = client.post("/api/v1/pipelines", json=config)
        shell = client.post("/api/v1/pipelines/validate", json=dangerous)
    assert_error(refused, 422, "invalid_config")
    assert codes(shell.json()) == [("unknown_adapter", "steps[0].adapters[0].name")]


def test_an_allowed_module_makes_import_paths_known(db_url: str, tmp_path: Path) -> None:
    srv = start_server(EXAMPLES / "words.py", db_url, str(tmp_path / "data"),
                       tmp_path / "server.log",
                       env={"STAGELINE_ADAPTER_MODULES": "stageline.adapters"})
    config = library_config()
    config["steps"][2]["adapters"].append({"name": "stageline.adapters.library:embed_text"})
    try:
        with srv.client() as client:
            created = client.post("/api/v1/pipelines", json=config)
            not_callable = client.post("/api/v1/pipelines/validate", json={
                **config, "steps": [{**config["steps"][0], "adapters": [
                    {"name": "stageline.adapters.library:FORMATS"}]}]})
            shell = client.post("/api/v1/pipelines/validate", json={
                **config, "steps": [{**config["steps"][0], "adapters": [
                    {"name": "os:system"}]}]})
    finally:
        srv.stop()
    assert created.status_code == 201, created.text
    assert codes(not_callable.json()) == [("unknown_adapter", "steps[0].adapters[0].name")]
    assert codes(shell.json()) == [("unknown_adapter", "steps[0].adapters[0].name")]


def test_create_refuses_a_name_in_use(server: Server) -> None:
    with server.client() as client:
        taken = client.post("/api/v1/pipelines", json=words_config("words"))
        first = client.post("/api/v1/pipelines", json=words_config())
        again = post_yaml(client, "/api/v1/pipelines", words_config(retries=1))
        versions = client.get("/api/v1/pipelines/counting/versions").json()["items"]
    assert_error(taken, 409, "pipeline_exists")
    assert first.status_code == 201
    assert_error(again, 409, "pipeline_exists")
    assert [v["version"] for v in versions] == [1]


# --- versions ---------------------------------------------------------------------------


def test_a_new_version_only_when_the_config_changed(server: Server) -> None:
    url = "/api/v1/pipelines/counting/versions"
    with server.client() as client:
        v1 = client.post("/api/v1/pipelines", json=words_config()).json()
        same = post_yaml(client, url, words_config())
        changed = client.post(url, json=words_config(retries=5))
        changed_again = client.post(url, json=words_config(retries=5))
        back = client.post(url, json=words_config())
    assert same.status_code == 200 and same.json() == v1
    assert changed.status_code == 201 and changed.json()["version"] == 2
    assert changed_again.status_code == 200 and changed_again.json() == changed.json()
    assert back.status_code == 201 and back.json()["version"] == 3
    assert back.json()["config_snapshot"] == v1["config_snapshot"]


def test_publishing_checks_the_config_and_its_name(server: Server) -> None:
    with server.client() as client:
        client.post("/api/v1/pipelines", json=words_config())
        renamed = client.post("/api/v1/pipelines/counting/versions",
                              json=words_config("other"))
        unknown = client.post("/api/v1/pipelines/other/versions", json=words_config("other"))
        invalid = client.post("/api/v1/pipelines/counting/versions",
                              json={**words_config(), "steps": []})
    assert_error(renamed, 400, "pipeline_name_mismatch")
    assert_error(unknown, 404, "pipeline_not_found")
    assert codes(assert_error(invalid, 422, "invalid_config")) == [("invalid_value", "steps")]


def test_an_execution_started_on_v1_finishes_on_v1(server: Server) -> None:
    """v1 stops for review after `split`; v2 is published meanwhile; v1's run
    resumes and finishes on v1's snapshot, while new runs take v2."""
    with server.client() as client:
        v1 = client.post("/api/v1/pipelines", json=words_config(review=True)).json()
        started = start(client, "counting", version=1)
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        wait_for_status(client, run_id, {"in_review"})
        v2 = client.post("/api/v1/pipelines/counting/versions",
                         json=words_config(review=False)).json()
        assert v2["version"] == 2
        approved = client.post(f"/api/v1/executions/{run_id}/actions",
                               json={"action": "approve"})
        assert approved.status_code == 200, approved.text
        done = wait_for_status(client, run_id, {"completed"})
        latest = start(client, "counting", text="one two three")
        latest_done = wait_for_status(client, latest.json()["id"], {"completed"})
    assert (done["pipeline_version"], done["config_id"]) == (1, v1["config_id"])
    assert done["config_snapshot"] == v1["config_snapshot"]
    assert done["result"] == 3
    assert (latest_done["pipeline_version"], latest_done["config_id"]) == (2, v2["config_id"])
    assert latest_done["result"] == 3


# --- reading ----------------------------------------------------------------------------


def test_list_get_versions_and_config_ids(server: Server) -> None:
    with server.client() as client:
        for name in ("p1", "p2", "p3"):
            assert client.post("/api/v1/pipelines", json=words_config(name)).status_code == 201
        for retries in (1, 2):
            client.post("/api/v1/pipelines/p2/versions", json=words_config("p2", retries=retries))
        names, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/pipelines", params=params).json()
            names += [p["name"] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        detail = client.get("/api/v1/pipelines/p2").json()
        first_page = client.get("/api/v1/pipelines/p2/versions", params={"limit": 2}).json()
        last_page = client.get("/api/v1/pipelines/p2/versions",
                               params={"limit": 2, "cursor": first_page["next_cursor"]}).json()
        v1 = client.get("/api/v1/pipelines/p2/versions/1").json()
        by_id = client.get(f"/api/v1/configs/{last_page['items'][0]['config_id']}").json()
        words = client.get("/api/v1/pipelines/words").json()
    assert names == ["p3", "p2", "p1", "words"]
    assert [s["name"] for s in words["latest"]["config_snapshot"]["steps"]] == [
        "split", "count", "total"]
    assert (detail["name"], detail["latest_version"], detail["archived"]) == ("p2", 3, False)
    assert detail["description"] == "count the words of a text"
    assert detail["latest"]["config_snapshot"]["steps"][1]["retries"] == 2
    assert detail["latest_config_id"] == detail["latest"]["config_id"]
    assert [v["version"] for v in first_page["items"]] == [3, 2]
    assert first_page["next_cursor"] == 2
    assert [v["version"] for v in last_page["items"]] == [1]
    assert last_page["next_cursor"] is None
    assert v1["config_snapshot"]["steps"][1]["retries"] == 3
    assert by_id == v1


# --- archive ----------------------------------------------------------------------------


def test_archive_refuses_new_executions_and_lets_running_ones_finish(server: Server) -> None:
    with server.client() as client:
        client.post("/api/v1/pipelines", json=words_config(review=True))
        running = start(client, "counting").json()["id"]
        wait_for_status(client, running, {"in_review"})
        archived = client.post("/api/v1/pipelines/counting/archive")
        again = client.post("/api/v1/pipelines/counting/archive")
        refused = start(client, "counting")
        refused_by_version = start(client, "counting", version=1)
        config_id = archived.json()["latest_config_id"]
        refused_by_config = client.post("/api/v1/executions",
                                        json={"config_id": config_id, "input": {"text": "x"}})
        publish = client.post("/api/v1/pipelines/counting/versions",
                              json=words_config(retries=1))
        client.post(f"/api/v1/executions/{running}/actions", json={"action": "approve"})
        finished = wait_for_status(client, running, {"completed"})
        active = client.get("/api/v1/pipelines").json()["items"]
        every = client.get("/api/v1/pipelines", params={"include_archived": True}).json()
        detail = client.get("/api/v1/pipelines/counting").json()
        executions = client.get("/api/v1/executions", params={"pipeline": "counting"}).json()
    assert archived.status_code == 200 and archived.json()["archived"] is True
    assert again.json()["archived_at"] == archived.json()["archived_at"]
    for response in (refused, refused_by_version, refused_by_config, publish):
        assert_error(response, 409, "pipeline_archived")
    assert finished["result"] == 3
    assert [p["name"] for p in active] == ["words"]
    assert [p["name"] for p in every["items"]] == ["counting", "words"]
    assert detail["archived"] is True
    assert [e["id"] for e in executions["items"]] == [running]


# --- errors -----------------------------------------------------------------------------


def test_error_paths(server: Server) -> None:
    with server.client() as client:
        form = client.post("/api/v1/pipelines", content="name=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        unknown = client.get("/api/v1/pipelines/nope")
        unknown_versions = client.get("/api/v1/pipelines/nope/versions")
        unknown_number = client.get("/api/v1/pipelines/words/versions/9")
        unknown_config = client.get("/api/v1/configs/0190c8a0-0000-7000-8000-000000000000")
        archive_unknown = client.post("/api/v1/pipelines/nope/archive")
        bad_cursor = client.get("/api/v1/pipelines", params={"cursor": "!!"})
        bad_number = client.get("/api/v1/pipelines/words/versions/0")
        bad_config_id = client.get("/api/v1/configs/not-a-uuid")
        bad_limit = client.get("/api/v1/pipelines", params={"limit": 100000})
        too_large = client.post("/api/v1/pipelines", content=b"x" * (11 * 1024 * 1024),
                                headers={"Content-Type": "application/json"})
        empty = client.post("/api/v1/pipelines", content=b"",
                            headers={"Content-Type": "application/json"})
    assert_error(form, 415, "unsupported_media_type")
    for response in (unknown, unknown_versions, unknown_number, unknown_config,
                     archive_unknown):
        assert_error(response, 404, "pipeline_not_found")
    assert_error(bad_cursor, 400, "invalid_cursor")
    for response in (bad_number, bad_config_id, bad_limit):
        assert response.status_code == 422 and "detail" in response.json()
    assert_error(too_large, 413, "payload_too_large")
    assert codes(assert_error(empty, 422, "invalid_config")) == [("invalid_json", "")]


def test_openapi_documents_the_config_body(server: Server) -> None:
    with server.client() as client:
        spec = client.get("/openapi.json").json()
    create = spec["paths"]["/api/v1/pipelines"]["post"]
    content = create["requestBody"]["content"]
    assert set(content) == {"application/json", "application/yaml"}
    assert "steps" in content["application/json"]["schema"]["properties"]
    assert create["description"]
    for path in ("/api/v1/pipelines/validate", "/api/v1/pipelines/{name}/versions",
                 "/api/v1/pipelines/{name}/versions/{number}", "/api/v1/configs/{config_id}",
                 "/api/v1/pipelines/{name}/archive", "/api/v1/pipelines/{name}"):
        assert path in spec["paths"]


# --- tenants ----------------------------------------------------------------------------


@pytest.fixture
def two_tenants(db_url: str, tmp_path: Path) -> Iterator[tuple[Server, str, str]]:
    """A server with one key for each of two tenants: (server, key of acme, key of globex)."""
    database = Database(db_url)
    try:
        migrate.upgrade(database)
        with database.write() as conn:
            acme, _ = tenants.create_key(conn, "acme", "ci")
            globex, _ = tenants.create_key(conn, "globex", "ci")
    finally:
        database.dispose()
    srv = start_server(EXAMPLES / "words.py", db_url, str(tmp_path / "data"),
                       tmp_path / "server.log")
    try:
        yield srv, acme, globex
    finally:
        srv.stop()


def test_a_tenants_pipelines_are_invisible_to_another(
        two_tenants: tuple[Server, str, str]) -> None:
    srv, acme_key, globex_key = two_tenants
    with srv.client(acme_key) as acme, srv.client(globex_key) as globex, srv.client() as anon:
        created = acme.post("/api/v1/pipelines", json=words_config()).json()
        assert_error(anon.post("/api/v1/pipelines/validate", json=words_config()), 401,
                     "missing_api_key")
        for response in (
            globex.get("/api/v1/pipelines/counting"),
            globex.get("/api/v1/pipelines/counting/versions"),
            globex.get("/api/v1/pipelines/counting/versions/1"),
            globex.get(f"/api/v1/configs/{created['config_id']}"),
            globex.post("/api/v1/pipelines/counting/archive"),
            globex.post("/api/v1/pipelines/counting/versions", json=words_config(retries=1)),
            start(globex, "counting"),
        ):
            assert_error(response, 404, "pipeline_not_found")
        assert globex.get("/api/v1/pipelines").json()["items"] == []
        theirs = globex.post("/api/v1/pipelines", json=words_config())
        assert theirs.status_code == 201
        assert theirs.json()["config_id"] != created["config_id"]
        mine = acme.get("/api/v1/pipelines", params={"include_archived": True}).json()
    assert [p["name"] for p in mine["items"]] == ["counting"]
