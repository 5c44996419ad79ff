"""The served OpenAPI document is valid and names the seed pages' models."""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tests.acceptance.conftest import EXAMPLES, start_server
from tests.conftest import scratch_database

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SEED_000_STAGE_STATUSES = ["pending", "initiated", "processing", "completed", "failed",
                           "cancelled"]




@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    directory = tmp_path_factory.mktemp("openapi")
    with scratch_database(directory) as db_url:
        server = start_server(EXAMPLES / "words.py", db_url, str(directory / "data"),
                              directory / "server.log")
        try:
            with server.client() as http:
                yield http
        finally:
            server.stop()


@pytest.fixture(scope="module")
def spec(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"external reference {ref}"
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved reference {ref}"
        node = node[part]
    return node


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_openapi_document_is_valid(spec: dict[str, Any]) -> None:
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        importlib.import_module("openapi_spec_validator").validate(spec)
    # openapi-spec-validator is not a test dependency: check the structure ourselves too.
    assert re.fullmatch(r"3\.\d+\.\d+", spec["openapi"])
    assert isinstance(spec["info"]["title"], str) and isinstance(spec["info"]["version"], str)
    assert spec["paths"] and all(path.startswith("/") for path in spec["paths"])
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for ref in set(refs(spec)):
        resolve(spec, ref)


def test_every_operation_declares_its_path_parameters_and_responses(
        spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path)), (method, path)
        assert operation["responses"], (method, path)
        for code in operation["responses"]:
            assert code == "default" or re.fullmatch(r"[1-5](\d\d|XX)", code), (path, code)


def test_component_schemas_are_json_schema_2020_12(spec: dict[str, Any]) -> None:
    # OpenAPI 3.1's schema objects are JSON Schema 2020-12.
    for name, schema in spec["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            pytest.fail(f"component schema {name}: {exc.message}")


def test_seed_models_are_named_components(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for name in ("ExecutionLineageResponse", "LineageEntryResponse", "ErrorResponse",
                 "HTTPValidationError"):
        assert name in schemas, name
    entry = schemas["LineageEntryResponse"]
    assert entry["properties"]["stage_status"]["enum"] == SEED_000_STAGE_STATUSES
    assert set(entry["required"]) == {"id", "correlation_id", "stage_name", "stage_status",
                                      "started_at"}
    assert set(schemas["ExecutionLineageResponse"]["required"]) == {"total", "execution_id",
                                                                    "entries"}
    assert "detail" in schemas["ErrorResponse"]["required"]
    assert set(schemas["ErrorResponse"]["properties"]) == {"detail", "error_code",
                                                          "correlation_id", "timestamp"}
    items = resolve(spec, schemas["HTTPValidationError"]["properties"]["detail"]["items"]["$ref"])
    assert set(items["required"]) == {"loc", "msg", "type"}


def test_lineage_operation_matches_seed_000(spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/api/v1/executions/{execution_id}/lineage"]["get"]
    limit = next(p for p in operation["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 10000)
    assert limit["schema"]["default"] == 1000
    content = {code: r["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
               for code, r in operation["responses"].items()}
    # the seed's three answers, with its models; the other errors any operation may
    # give (401, 503, ...) are documented too, as ErrorResponse
    assert {code: content[code] for code in ("200", "404", "422")} == {
        "200": "ExecutionLineageResponse", "404": "ErrorResponse",
        "422": "HTTPValidationError"}
    assert {content[code] for code in content.keys() - {"200", "422"}} == {"ErrorResponse"}


def test_docs_page_answers(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text
