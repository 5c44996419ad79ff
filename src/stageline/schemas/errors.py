"""Seed 000's error shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    """Standard error response matching FastAPI HTTPException format."""

    detail: str = Field(description="Error message (matches FastAPI HTTPException)")
    error_code: str | None = None
    correlation_id: str | None = None
    timestamp: datetime = Field(description="Error timestamp")


class ValidationError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class HTTPValidationError(BaseModel):
    detail: list[ValidationError] = Field(default_factory=list)


# What most operations document besides their success: unknown ids and invalid
# requests. (Every operation also documents 400/401/413/503: see api/app.py.)
NOT_FOUND_OR_INVALID: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Resource not found"},
    422: {"model": HTTPValidationError, "description": "Validation Error"},
}
