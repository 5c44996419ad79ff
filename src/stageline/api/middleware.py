"""ASGI middleware: a request id on every request, a cap on body size, and no
NUL characters (PostgreSQL text cannot hold them; SQLite would, so refusing
them everywhere keeps both backends answering alike)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stageline.store.ids import new_id


class BodyTooLarge(Exception):
    pass


class RequestContext:
    """Gives every request an id (or keeps the caller's X-Request-ID) and
    returns it in the response header; answers 413 for bodies over `max_body`
    bytes and 422 for NUL characters, before the app sees the request."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = _request_id(headers.get(b"x-request-id", b""))
        scope.setdefault("state", {})["request_id"] = request_id
        if _has_nul(scope):
            await _invalid(send, request_id, "path", "NUL characters are not accepted in "
                           "paths or parameters")
            return
        try:
            body = await _read_body(receive, headers, self.max_body)
        except BodyTooLarge:
            await _refuse(send, request_id, 413, "payload_too_large",
                          f"request body is over the limit of {self.max_body} bytes")
            return
        if b"\\u0000" in body:
            await _invalid(send, request_id, "body", "NUL characters are not accepted in "
                           "request bodies")
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                message["headers"] = [*kept, (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, _replay(body, receive), send_with_id)


def _request_id(given: bytes) -> str:
    try:
        text = given.decode("ascii")[:100]
    except UnicodeDecodeError:
        text = ""
    return text if text.isprintable() and text else str(new_id())


def _has_nul(scope: Scope) -> bool:
    raw = bytes(scope.get("raw_path") or b"") + b"?" + bytes(scope.get("query_string") or b"")
    return b"%00" in raw or b"\x00" in raw or "\x00" in scope.get("path", "")


async def _read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body once, then whatever the server sends next (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _refuse(send: Send, request_id: str, status: int, code: str, detail: str) -> None:
    """Seed 000's ErrorResponse."""
    await _answer(send, request_id, status, {
        "detail": detail, "error_code": code, "correlation_id": request_id,
        "timestamp": datetime.now(UTC).isoformat()})


async def _invalid(send: Send, request_id: str, where: str, message: str) -> None:
    """A 422 in the HTTPValidationError shape, as for any other invalid request."""
    await _answer(send, request_id, 422, {"detail": [
        {"loc": [where], "msg": message, "type": "nul_character"}]})


async def _answer(send: Send, request_id: str, status: int, body: object) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
        (b"x-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": raw})
