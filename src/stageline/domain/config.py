"""The declarative pipeline config: what every pipeline is, however written.

Decorated Python functions and YAML/JSON files both produce a
`PipelineConfig`; its canonical JSON is the `config_snapshot` of a version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stageline.domain.graph import ENTRY_STAGE, GraphError, graph_findings, topological_order
from stageline.domain.item_schemas import SCHEMA_FIELDS, schema_findings

__all__ = ["ENTRY_STAGE", "AdapterRef", "Backoff", "PipelineConfig", "StepConfig"]
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"


class AdapterRef(BaseModel):
    """One adapter in a step's chain: a registered name or `module:function`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=300)
    params: dict[str, Any] = Field(default_factory=dict)


class Backoff(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: float = Field(default=0.5, ge=0, le=3600)
    maximum: float = Field(default=60.0, ge=0, le=86400)
    multiplier: float = Field(default=2.0, ge=1, le=10)
    jitter: float = Field(default=0.5, ge=0, le=1)


class StepConfig(BaseModel):
    """A step (route): reads one stage, runs its adapters, writes one stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    input: str = Field(pattern=NAME_PATTERN)
    output: str = Field(pattern=NAME_PATTERN)
    adapters: list[AdapterRef] = Field(min_length=1, max_length=32)
    fan_out: bool = False
    collect: bool = False
    retries: int = Field(default=0, ge=0, le=100)
    backoff: Backoff = Field(default_factory=Backoff)
    timeout: float | None = Field(default=None, gt=0, le=86400)
    review: bool = False
    queue: str = Field(default="default", pattern=NAME_PATTERN)
    priority: int = Field(default=0, ge=-1000, le=1000)
    concurrency_key: str | None = Field(default=None, max_length=200)
    concurrency_limit: int | None = Field(default=None, ge=1, le=10000)
    cache: bool = False
    # JSON Schemas of ONE item: each item read (for a collect step, each item of
    # the collected stage) and each item written (for a fan_out step, each one
    # produced). Checked by validation and replay planning, not by workers.
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None

    @field_validator(*SCHEMA_FIELDS)
    @classmethod
    def _plain_json(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        """The schema as JSON reads it back (tuples become lists), so that the
        snapshot and the config hash see exactly what is stored."""
        if schema is None:
            return None
        try:
            plain: dict[str, Any] = orjson.loads(orjson.dumps(schema))
        except TypeError as exc:
            raise ValueError(f"the schema is not plain JSON: {exc}") from exc
        return plain


@dataclass(frozen=True)
class Layout:
    order: list[int]  # step indexes, upstream first
    upstream: list[int | None]  # index of the step writing each step's input
    is_leaf: list[bool]  # no step reads this step's output


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=2000)
    steps: list[StepConfig] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _graph_is_sound(self) -> PipelineConfig:
        findings = graph_findings(self) + schema_findings(self.steps)
        if findings:
            raise GraphError(self.name, findings)
        return self

    def snapshot(self) -> dict[str, Any]:
        """The JSON form stored with each version.

        Undeclared item schemas are left out, so a config that declares none
        keeps the snapshot (and the config hash) it had before schemas existed.
        """
        data = self.model_dump(mode="json")
        for step in data["steps"]:
            for field in SCHEMA_FIELDS:
                if step[field] is None:
                    del step[field]
        return data

    def config_hash(self) -> str:
        """Content hash: a new version is created only when this changes."""
        canonical = orjson.dumps(self.snapshot(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    @cached_property
    def layout(self) -> Layout:
        """The graph's shape, computed once per config: settling reads it per batch."""
        producer = {s.output: i for i, s in enumerate(self.steps)}
        consumed = {s.input for s in self.steps}
        names = {s.name: i for i, s in enumerate(self.steps)}
        return Layout(
            order=[names[s.name] for s in topological_order(self.steps)],
            upstream=[producer.get(s.input) for s in self.steps],
            is_leaf=[s.output not in consumed for s in self.steps],
        )

    def step(self, name: str) -> StepConfig:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)
