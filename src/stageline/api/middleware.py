"""ASGI middleware: a request id on every request, and a cap on body size."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stageline.store.ids import new_id

log = logging.getLogger("stageline.api")


class RequestContext:
    """Gives every request an id (or keeps the caller's X-Request-ID), returns it
    in the response header, and refuses bodies over `max_body` bytes with 413."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode()[:100] or str(new_id())
        scope.setdefault("state", {})["request_id"] = request_id
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _too_large(send, request_id, self.max_body)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, _limited(receive, self.max_body), send_with_id)


class BodyTooLarge(Exception):
    pass


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(f"request body is over {limit} bytes")
        return message

    return wrapped


async def _too_large(send: Send, request_id: str, limit: int) -> None:
    body: dict[str, Any] = {
        "detail": f"request body is over the limit of {limit} bytes",
        "error_code": "payload_too_large", "correlation_id": request_id,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
        (b"x-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": raw})
