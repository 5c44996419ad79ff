"""Every 4xx and 5xx answers seed 000's ErrorResponse with a stable error_code."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stageline.api.middleware import BodyTooLarge
from stageline.domain.replay import ReplayRejected
from stageline.domain.status import IllegalTransition
from stageline.storage.blobs import MissingItem, StorageUnavailable
from stageline.store.db import DatabaseUnavailable
from stageline.store.executions import TagInUse, UnknownExecution
from stageline.store.guarded import TransitionConflict
from stageline.store.pipelines import UnknownPipeline
from stageline.store.replay import MissingStoredItems, ParentRunning

log = logging.getLogger("stageline.api")


class ApiError(Exception):
    def __init__(self, status: int, error_code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error_code = error_code
        self.detail = detail


# domain and store exceptions -> (status, error_code)
KNOWN: list[tuple[type[Exception], int, str]] = [
    (UnknownExecution, 404, "execution_not_found"),
    (UnknownPipeline, 404, "pipeline_not_found"),
    (TagInUse, 409, "tag_in_use"),
    (TransitionConflict, 409, "invalid_state"),
    (IllegalTransition, 409, "invalid_state"),
    (MissingItem, 409, "stored_item_missing"),
    (ParentRunning, 409, "parent_running"),
    (MissingStoredItems, 409, "stored_items_missing"),
    (BodyTooLarge, 413, "payload_too_large"),
    (DatabaseUnavailable, 503, "database_unavailable"),
    (StorageUnavailable, 503, "storage_unavailable"),
]

HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
    500: "internal_error", 503: "service_unavailable",
}


def error_body(request: Request, status: int, code: str, detail: str) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.info("%s %s -> %d %s (request %s)", request.method, request.url.path, status, code,
             request_id)
    body = {"detail": detail, "error_code": code, "correlation_id": request_id,
            "timestamp": datetime.now(UTC).isoformat()}
    # RFC 9110: a 401 names the scheme to authenticate with
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_body(request, exc.status, exc.error_code, exc.detail)

    for exc_type, status, code in KNOWN:
        app.add_exception_handler(exc_type, _mapped(status, code))

    @app.exception_handler(ReplayRejected)
    async def _replay_rejected(request: Request, exc: ReplayRejected) -> JSONResponse:
        return error_body(request, 400, exc.code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_body(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_clean(e) for e in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s (request %s)", request.method,
                      request.url.path, getattr(request.state, "request_id", None))
        return error_body(request, 500, "internal_error", "internal server error")


def _mapped(status: int, code: str) -> Any:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return error_body(request, status, code, str(exc))

    return handler


def _json_safe(value: Any) -> Any:
    """The offending input as given, or its text when JSON cannot carry it (NaN)."""
    try:
        json.dumps(jsonable_encoder(value), allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _clean(error: Any) -> dict[str, Any]:
    out = {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""),
           "type": error.get("type", "")}
    if "input" in error:
        out["input"] = _json_safe(error["input"])
    if error.get("ctx"):
        out["ctx"] = {k: str(v) for k, v in error["ctx"].items()}
    return out
