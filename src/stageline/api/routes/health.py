"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from stageline.api.deps import RuntimeDep
from stageline.api.errors import ApiError
from stageline.store.db import DatabaseUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> dict[str, Any]:
    """Ok when the database answers."""
    try:
        with runtime.db.read() as conn:
            conn.execute(text("SELECT 1"))
    except DatabaseUnavailable as exc:
        raise ApiError(503, "database_unavailable", str(exc)) from exc
    return {"status": "ok", "database": runtime.db.dialect,
            "pipelines": sorted(runtime.versions)}
