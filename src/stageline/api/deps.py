"""Dependencies shared by the routers: the runtime, the caller's tenant."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request

from stageline.api.auth import Authenticator, bearer
from stageline.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_tenant(
    request: Request,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_clinia_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> UUID:
    auth: Authenticator = request.app.state.auth
    return auth.tenant_for(x_api_key or bearer(authorization) or x_clinia_api_key)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
TenantDep = Annotated[UUID, Depends(get_tenant)]
