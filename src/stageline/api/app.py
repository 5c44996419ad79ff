"""The FastAPI application, with the worker running beside it when embedded."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from stageline.api import errors
from stageline.api.auth import Authenticator
from stageline.api.endings import Endings
from stageline.api.middleware import RequestContext
from stageline.api.routes import (
    diff,
    executions,
    health,
    lineage,
    monitoring,
    pipeline_views,
    pipelines,
    replay,
    sources,
)
from stageline.engine.processes import WorkerProcesses
from stageline.engine.worker import Worker
from stageline.runtime import Runtime
from stageline.schemas.pipelines import InvalidConfigResponse
from stageline.store import control

log = logging.getLogger("stageline")


def create_app(runtime: Runtime, *, worker: Worker | None = None,
               processes: WorkerProcesses | None = None, open_access: bool = True,
               embedded: bool = False) -> FastAPI:
    """`worker` runs in this process for the app's lifetime, or `processes` beside
    it; `embedded` marks the server that owns its store (SQLite), which
    interrupts its executions when it stops and resumes them when it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if embedded:
            with runtime.db.write() as conn:
                resumed = control.resume_interrupted(conn)
            if resumed:
                log.info("resumed %d interrupted executions", resumed)
        if worker is not None:
            worker.start()
        if processes is not None:
            processes.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            if processes is not None:
                processes.stop()
            if embedded:
                with runtime.db.write() as conn:
                    stopped = control.interrupt_running(conn)
                if stopped:
                    log.info("%d executions interrupted; they resume at next start", stopped)

    assert runtime.default_tenant is not None
    app = FastAPI(title="Stageline", version="0.1.0", lifespan=lifespan,
                  description="Durable pipeline executions with per-item lineage, partial "
                              "results and replay from any stage.")
    app.state.runtime = runtime
    app.state.auth = Authenticator(runtime.db, runtime.default_tenant, open_access)
    app.state.endings = Endings()
    if worker is not None:
        worker.on_commit = lambda report: app.state.endings.announce(report.finished)
    if processes is not None:
        processes.on_finished = app.state.endings.announce
    errors.install(app)
    for module in (health, executions, replay, diff, lineage, monitoring, pipeline_views,
                   pipelines, sources):
        app.include_router(module.router)
    app.add_middleware(RequestContext, max_body=runtime.settings.max_body_bytes)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


EXTRA_MODELS: list[type[BaseModel]] = [InvalidConfigResponse]

# Answers any operation may give, whatever its route declares.
COMMON_ERRORS = {
    "400": "Malformed cursor or parameter",
    "401": "Missing or unknown API key",
    "404": "Resource not found",
    "413": "Request body over the limit",
    "422": "Validation Error",
    "503": "Database or stage storage unavailable",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, with the errors every operation can answer documented."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        error = {"$ref": "#/components/schemas/ErrorResponse"}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for code, text in COMMON_ERRORS.items():
                    responses.setdefault(code, {"description": text, "content": {
                        "application/json": {"schema": error}}})
        _add_models(schema, EXTRA_MODELS)
        app.openapi_schema = schema
    return app.openapi_schema


def _add_models(schema: dict[str, Any], models: list[type[BaseModel]]) -> None:
    """Register models that responses name by $ref without a route using them."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(found.pop("$defs", {}))
        components.setdefault(model.__name__, found)
