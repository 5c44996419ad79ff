"""Helpers of the seed-view acceptance tests.

- Seed 003's OpenAPI document, parsed from its page, validates responses
  directly (`$ref`s resolved, `date-time` checked).
- Seed 001's page has no schema, so `SEED_001_EXECUTION` is written from it:
  its field names, required fields and status values. Its JSON example is a
  golden fixture: responses carry exactly its fields.
- `shared_server` starts one `stageline serve` for a whole test module, with
  API keys for two tenants that both have the module's pipelines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from stageline.loader import load
from stageline.runtime import Runtime
from stageline.settings import Settings
from stageline.store import pipelines, tenants
from tests.acceptance.conftest import Server, start_server
from tests.conftest import scratch_database

REPO = Path(__file__).resolve().parents[2]
# The seed pages live in the shared folder beside the repository (as on CI).
SEED_DIRS = [Path(os.environ.get("STAGELINE_SEEDS", REPO.parent / "shared" / "seeds")),
             Path("/work/shared/seeds")]

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339: a date, a time and an offset (jsonschema needs an extra
    package to check this format, so it is checked here)."""
    if not isinstance(value, str):
        return True
    return "T" in value.upper() and datetime.fromisoformat(value).tzinfo is not None


# -- the seed pages ---------------------------------------------------------------


def seed_page(number: str) -> str:
    """The text of seed page `number` (e.g. "003")."""
    for folder in SEED_DIRS:
        found = sorted(folder.glob(f"{number}_*.txt")) if folder.is_dir() else []
        if found:
            return found[0].read_text()
    raise FileNotFoundError(f"seed page {number} not found in {[str(d) for d in SEED_DIRS]}; "
                            "set STAGELINE_SEEDS to the folder of the seed pages")


@cache
def seed_003_document() -> dict[str, Any]:
    """The OpenAPI document embedded in seed 003's page (its ```` yaml block)."""
    page = seed_page("003")
    start = page.index("````yaml")
    body = page[page.index("\n", start) + 1:page.index("````", start + 8)]
    document: dict[str, Any] = yaml.safe_load(body)
    return document


def seed_003_schema(component: str) -> dict[str, Any]:
    schema: dict[str, Any] = seed_003_document()["components"]["schemas"][component]
    return schema


def seed_003_validator(component: str) -> Draft202012Validator:
    """A validator of one of seed 003's components, its `$ref`s resolved
    against the seed's own document."""
    root = {"$ref": f"#/components/schemas/{component}",
            "components": seed_003_document()["components"]}
    return Draft202012Validator(root, format_checker=FORMATS)


def seed_001_example() -> dict[str, Any]:
    """The JSON example of seed 001's page."""
    page = seed_page("001")
    start = page.index("\n{\n") + 1
    end = page.index("\n}\n", start) + 2
    example: dict[str, Any] = json.loads(page[start:end])
    return example


SEED_001_STATUSES = ["SUCCESSFUL", "ERROR", "IN_PROGRESS", "IN_REVIEW", "CANCELLED", "DROPPED"]
SEED_001_STEP_STATUSES = ["PENDING", "IN_PROGRESS", "IN_REVIEW", "PROCESSED", "ERROR",
                          "CANCELLED", "SKIPPED"]
_STRING = {"type": "string"}
_DATE_TIME = {"type": "string", "format": "date-time"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties,
            "additionalProperties": False}


_OPERATION = _object(
    ["taskId", "action", "target"], taskId=_STRING, action=_STRING,
    target=_object(["targetType", "id", "type"], targetType=_STRING, id=_STRING, type=_STRING),
    body={},
)
_STEP = _object(
    ["status"],
    status={"enum": SEED_001_STEP_STATUSES},
    error=_nullable(_object(["code", "message", "type", "details"], code={"type": "integer"},
                            message=_STRING, type=_STRING,
                            details={"type": "array", "items": {"type": "object"}})),
    decision=_nullable(_object(
        ["id", "author", "actedAt"], id=_STRING, description=_nullable(_STRING),
        author=_object([], id=_nullable(_STRING), email=_nullable(_STRING)),
        actedAt=_nullable(_DATE_TIME))),
    processedAt=_nullable(_DATE_TIME),
)
SEED_001_EXECUTION: dict[str, Any] = _object(
    ["id", "pipelineDefinitionId", "status", "steps", "operation", "createdAt", "updatedAt"],
    id=_STRING, pipelineDefinitionId=_STRING, status={"enum": SEED_001_STATUSES},
    steps={"type": "array", "items": _STEP}, operation=_OPERATION,
    processedOperation=_nullable(_OPERATION), createdAt=_DATE_TIME, updatedAt=_DATE_TIME,
)
SEED_001_VALIDATOR = Draft202012Validator(SEED_001_EXECUTION, format_checker=FORMATS)


def assert_seed_003(body: dict[str, Any]) -> None:
    """Valid against seed 003's PipelineExecutionResponse, with exactly its fields."""
    seed_003_validator("PipelineExecutionResponse").validate(body)
    assert set(body) == set(seed_003_schema("PipelineExecutionResponse")["properties"])
    step_fields = set(seed_003_schema("PipelineExecutionStepResponse")["properties"])
    for step in body["steps"]:
        assert set(step) == step_fields


def assert_seed_001(body: dict[str, Any]) -> None:
    SEED_001_VALIDATOR.validate(body)


def assert_same_fields(actual: Any, example: Any, where: str = "$") -> None:
    """`actual` has exactly the fields of seed 001's example, at every level
    (an empty object in the example is free-form; a null value is not followed)."""
    if isinstance(example, dict) and example:
        assert isinstance(actual, dict), where
        assert set(actual) == set(example), f"{where}: {sorted(actual)} != {sorted(example)}"
        for name, value in actual.items():
            if value is not None:
                assert_same_fields(value, example[name], f"{where}.{name}")
    elif isinstance(example, list) and example:
        assert isinstance(actual, list), where
        for i, value in enumerate(actual):
            assert_same_fields(value, example[0], f"{where}[{i}]")


# -- one server for a test module -------------------------------------------------


@dataclass
class Stack:
    server: Server
    mine: httpx.Client  # the default tenant, which runs the module's pipelines
    theirs: httpx.Client  # another tenant, with its own versions of the same pipelines
    anonymous: httpx.Client
    my_key: str
    storage: Path
    folder: Path  # scratch space of the module (e.g. for gate files)




def _prepare(db_url: str, storage: Path, pipeline_file: Path) -> tuple[str, str]:
    """Keys for two tenants, and the file's pipelines registered for the second
    one too (the server registers them for the default tenant)."""
    runtime = Runtime.open(Settings(db=db_url, storage=str(storage)), migrate_schema=True)
    try:
        with runtime.db.write() as conn:
            mine, _ = tenants.create_key(conn, "default", "tests")
            theirs, key = tenants.create_key(conn, "other", "tests")
            for pipeline in load(str(pipeline_file)):
                pipelines.register(conn, key.tenant_id, pipeline.config)
    finally:
        runtime.close()
    return mine, theirs


@contextmanager
def shared_server(folder: Path, pipeline_source: str,
                  env: dict[str, str] | None = None) -> Iterator[Stack]:
    """`stageline serve` of `pipeline_source` (Python) on a fresh database."""
    pipeline_file = folder / "seed_view_pipelines.py"
    pipeline_file.write_text(pipeline_source)
    storage = folder / "data"
    with scratch_database(folder) as db_url:
        mine, theirs = _prepare(db_url, storage, pipeline_file)
        server = start_server(pipeline_file, db_url, str(storage), folder / "server.log",
                              env=env)
        try:
            with server.client(mine) as a, server.client(theirs) as b, server.client() as c:
                yield Stack(server, a, b, c, mine, storage, folder)
        finally:
            server.stop()
