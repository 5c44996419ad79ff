"""Pipelines: validation reports, versions and lists.

A config itself travels as `stageline.domain.config.PipelineConfig` (JSON) or
as the same document in YAML; its model forbids unknown fields and bounds
every string and list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from stageline.schemas.errors import ErrorResponse


class ConfigFinding(BaseModel):
    """One problem in a config."""

    code: str = Field(description="Stable snake_case code, e.g. unknown_adapter, cycle")
    path: str = Field(description="Where in the config, e.g. steps[2].adapters[0].name; "
                                  "empty for the whole document")
    message: str = Field(description="What is wrong")
    remedy: str = Field(description="How to fix it")
    severity: Literal["error", "warning"] = Field(
        default="error", description="error: the config is invalid; warning: it is valid, "
                                     "but look")


class ValidationResponse(BaseModel):
    """The report on a config: valid when none of its findings is an error.
    Warnings (e.g. stage_type_mismatch) point at likely mistakes, listed after
    the errors."""

    valid: bool
    findings: list[ConfigFinding] = Field(default_factory=list)


class InvalidConfigResponse(ErrorResponse):
    """An ErrorResponse (error_code `invalid_config`) carrying the validation report."""

    valid: Literal[False] = False
    findings: list[ConfigFinding] = Field(default_factory=list)


class PipelineVersionResponse(BaseModel):
    """One immutable version of a pipeline."""

    pipeline: str = Field(description="Pipeline name")
    version: int = Field(description="Version number, from 1")
    config_id: UUID = Field(description="Configuration ID of this version")
    config_snapshot: dict[str, Any] = Field(description="The config, as executions run it")
    created_at: datetime


class PipelineVersionSummary(BaseModel):
    """A version as listed, without its config."""

    pipeline: str
    version: int
    config_id: UUID
    created_at: datetime


class PipelineVersionList(BaseModel):
    items: list[PipelineVersionSummary]
    next_cursor: int | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page")


class PipelineSummary(BaseModel):
    """A pipeline with its latest version."""

    name: str
    latest_version: int
    latest_config_id: UUID
    archived: bool
    archived_at: datetime | None = None
    created_at: datetime
    updated_at: datetime = Field(description="When the latest version was published")


class PipelineDetail(PipelineSummary):
    """A pipeline with its latest version's config."""

    description: str | None = None
    latest: PipelineVersionResponse


class PipelineList(BaseModel):
    items: list[PipelineSummary]
    next_cursor: str | None = None
