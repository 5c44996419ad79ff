"""A typed client for the Stageline API over httpx, sync and async.

Both clients build the same `Call`s and parse answers into the API's own
response models; they differ only in how they send. Requests that answer 429
or 503, or fail to connect, are retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload
from uuid import UUID

import httpx
from pydantic import TypeAdapter

from stageline.domain.status import EXECUTION_TERMINAL
from stageline.schemas.diff import ExecutionDiffResponse
from stageline.schemas.executions import ExecutionDetail, ExecutionList, ExecutionResponse
from stageline.schemas.lineage import ExecutionLineageResponse
from stageline.schemas.replay import ReplayPlanResponse

T = TypeVar("T")
P = ParamSpec("P")
RETRY_STATUSES = (429, 503)
TERMINAL = {str(s) for s in EXECUTION_TERMINAL}


class ApiError(Exception):
    """The API answered an error (seed 000's ErrorResponse)."""

    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.body = body
        self.error_code = body.get("error_code") if isinstance(body, dict) else None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: TypeAdapter[T]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None

    def read(self, response: httpx.Response) -> T:
        body = response.json() if response.content else None
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return self.parse.validate_python(body)


def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


_DETAIL = _adapter(ExecutionDetail)
_LIST = _adapter(ExecutionList)
_LINEAGE = _adapter(ExecutionLineageResponse)
_REPLAY = _adapter(ExecutionResponse | ReplayPlanResponse)
_REPLAYS = _adapter(list[ExecutionResponse])
_DIFF = _adapter(ExecutionDiffResponse)
_ANY = _adapter(Any)


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, UUID) else v) for k, v in params.items()
            if v is not None}


class Calls:
    """The API, as calls. Each method names the endpoint it builds."""

    @staticmethod
    def start(pipeline: str, input: Any = None, **options: Any) -> Call[ExecutionDetail]:
        body = _clean({"pipeline": pipeline, "input": input, **options})
        body.setdefault("input", None)
        return Call("POST", "/api/v1/executions", _DETAIL, json=body)

    @staticmethod
    def execution(id_or_tag: str | UUID, wait_seconds: float | None = None
                  ) -> Call[ExecutionDetail]:
        """With `wait_seconds`, the server answers once the execution has ended."""
        return Call("GET", f"/api/v1/executions/{id_or_tag}", _DETAIL,
                    params=_clean({"wait_seconds": wait_seconds}))

    @staticmethod
    def executions(**filters: Any) -> Call[ExecutionList]:
        return Call("GET", "/api/v1/executions", _LIST, params=_clean(filters))

    @staticmethod
    def cancel(id_or_tag: str | UUID) -> Call[ExecutionDetail]:
        return Call("POST", f"/api/v1/executions/{id_or_tag}/cancel", _DETAIL, json={})

    @staticmethod
    def act(id_or_tag: str | UUID, action: str, description: str | None = None
            ) -> Call[ExecutionDetail]:
        return Call("POST", f"/api/v1/executions/{id_or_tag}/actions", _DETAIL,
                    json=_clean({"action": action, "description": description}))

    @staticmethod
    def lineage(id_or_tag: str | UUID, limit: int = 1000) -> Call[ExecutionLineageResponse]:
        return Call("GET", f"/api/v1/executions/{id_or_tag}/lineage", _LINEAGE,
                    params={"limit": limit})

    @staticmethod
    def replay(id_or_tag: str | UUID, replay_source: str, from_stage: str, to_route: str,
               **options: Any) -> Call[ExecutionResponse | ReplayPlanResponse]:
        body = _clean({"replay_source": replay_source, "from_stage": from_stage,
                       "to_route": to_route, **options})
        return Call("POST", f"/api/v1/executions/{id_or_tag}/replay", _REPLAY, json=body)

    @staticmethod
    def replays(id_or_tag: str | UUID) -> Call[list[ExecutionResponse]]:
        return Call("GET", f"/api/v1/executions/{id_or_tag}/replays", _REPLAYS)

    @staticmethod
    def diff(a: str | UUID, b: str | UUID, **params: Any) -> Call[ExecutionDiffResponse]:
        return Call("GET", f"/api/v1/executions/{a}/diff/{b}", _DIFF, params=_clean(params))

    @staticmethod
    def get(path: str, **params: Any) -> Call[Any]:
        """Any other GET endpoint, answered as plain JSON."""
        return Call("GET", path, _ANY, params=_clean(params))

    @staticmethod
    def post(path: str, body: Any) -> Call[Any]:
        return Call("POST", path, _ANY, json=body)


class Endpoint(Generic[P, T]):
    """A `Calls` builder that, on a client, sends what it builds.

    On `Client` it answers the parsed response; on `AsyncClient`, an awaitable
    of it. One definition serves both.
    """

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: Client, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: AsyncClient, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Endpoint[P, T]: ...

    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build = self.build

        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            return obj.send(build(*args, **kwargs))

        return bound


class Endpoints:
    """Every call of `Calls`, as a method of the clients."""

    start = Endpoint(Calls.start)
    execution = Endpoint(Calls.execution)
    executions = Endpoint(Calls.executions)
    cancel = Endpoint(Calls.cancel)
    act = Endpoint(Calls.act)
    lineage = Endpoint(Calls.lineage)
    replay = Endpoint(Calls.replay)
    replays = Endpoint(Calls.replays)
    diff = Endpoint(Calls.diff)
    get = Endpoint(Calls.get)
    post = Endpoint(Calls.post)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"X-API-Key": api_key} if api_key else {}


def _wait_for(deadline: float) -> float:
    """One long-poll: what is left, well within the HTTP timeout."""
    return max(0.0, min(20.0, deadline - time.monotonic()))


def _delay(attempt: int) -> float:
    return float(min(0.1 * 2 ** attempt, 5.0))


class Client(Endpoints):
    """`Client(base_url, api_key=...)`: the whole API, synchronously."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 *, timeout: float = 30.0, retries: int = 4,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.retries = retries
        self.http = httpx.Client(base_url=base_url, headers=_headers(api_key),
                                 timeout=timeout, transport=transport)

    def send(self, call: Call[T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(call.method, call.path, params=call.params,
                                             json=call.json)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                    return call.read(response)
            time.sleep(_delay(attempt))
        raise AssertionError("unreachable")

    def wait(self, id_or_tag: str | UUID, timeout: float = 300.0) -> ExecutionDetail:
        """Until the execution reaches a terminal status (long-polling the server)."""
        deadline = time.monotonic() + timeout
        while True:
            detail = self.execution(id_or_tag, wait_seconds=_wait_for(deadline))
            if detail.stageline_status in TERMINAL:
                return detail
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {id_or_tag} still {detail.stageline_status}")

    def events(self, id_or_tag: str | UUID) -> Iterator[tuple[str, Any]]:
        """Server-Sent Events of the execution's status changes, until it ends."""
        import json

        with self.http.stream("GET", f"/api/v1/executions/{id_or_tag}/events",
                              timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, response.json())
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    yield event, json.loads(line[5:].strip())
                    event = "message"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(Endpoints):
    """The same API for asyncio: `await client.execution(id)`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 *, timeout: float = 30.0, retries: int = 4,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.retries = retries
        self.http = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key),
                                      timeout=timeout, transport=transport)

    async def send(self, call: Call[T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                response = await self.http.request(call.method, call.path,
                                                   params=call.params, json=call.json)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                    return call.read(response)
            await asyncio.sleep(_delay(attempt))
        raise AssertionError("unreachable")

    async def wait(self, id_or_tag: str | UUID, timeout: float = 300.0) -> ExecutionDetail:
        deadline = time.monotonic() + timeout
        while True:
            detail = await self.execution(id_or_tag, wait_seconds=_wait_for(deadline))
            if detail.stageline_status in TERMINAL:
                return detail
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {id_or_tag} still {detail.stageline_status}")

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["ApiError", "AsyncClient", "Call", "Calls", "Client"]
