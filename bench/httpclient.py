"""The harness's HTTP client: keep-alive HTTP/1.1 and JSON on the standard library.

The harness runs on the same 2 cores as the server it measures. httpx costs
about 1.5 ms of CPU per request here, so a W1 run (2,000 requests from the
harness) spent seconds of the machine on the client: that measured httpx,
not Stageline. This client does what the workloads need (GET with query
parameters, POST of JSON, status and JSON body back) for a small fraction of
that; any production client (curl, Go, a browser) costs less than httpx too.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import socket
from typing import Any
from urllib.parse import urlencode, urlsplit


class HTTPStatusError(Exception):
    pass


class Response:
    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise HTTPStatusError(f"HTTP {self.status_code}: {self.text[:500]}")


class LightClient:
    """One keep-alive connection; use one client per thread."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str, params: dict[str, Any] | None = None,
            timeout: float | None = None) -> Response:
        if params:
            path = f"{path}?{urlencode(params)}"
        return self.request("GET", path, None, timeout)

    def post(self, path: str, json: Any = None, timeout: float | None = None) -> Response:
        return self.request("POST", path, jsonlib.dumps(json).encode(), timeout)

    def request(self, method: str, path: str, body: bytes | None,
                timeout: float | None = None) -> Response:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):  # a kept-alive connection the server closed: once again
            conn = self._connection(timeout)
            try:
                conn.request(method, path, body=body, headers=headers)
                answer = conn.getresponse()
                return Response(answer.status, answer.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
            except BaseException:
                self.close()  # a connection in an unknown state is not reused
                raise
        raise AssertionError("unreachable")

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn.connect()  # raises before the connection is kept
            assert conn.sock is not None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout if timeout is not None else self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> LightClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
