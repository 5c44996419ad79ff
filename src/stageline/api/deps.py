"""Dependencies shared by the routers: the runtime, the caller's tenant."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from stageline.api.auth import Authenticator, bearer
from stageline.runtime import Runtime


# Both are coroutines: FastAPI runs a plain-function dependency on a worker
# thread, and that hop costs more than the work of these two.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_tenant(
    request: Request,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_clinia_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> UUID:
    auth: Authenticator = request.app.state.auth
    key = x_api_key or bearer(authorization) or x_clinia_api_key
    known = auth.cached(key)
    if known is not None:
        return known
    return await run_in_threadpool(auth.tenant_for, key)  # reads the keys table


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
TenantDep = Annotated[UUID, Depends(get_tenant)]
