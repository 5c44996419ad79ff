"""Routes for sources."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["sources"])
