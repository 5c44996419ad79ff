"""`Pipeline`: build a pipeline config from decorated Python functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from stageline.adapters.registry import Handler, adapter_name
from stageline.domain.config import AdapterRef, Backoff, PipelineConfig, StepConfig
from stageline.domain.graph import ENTRY_STAGE, Finding, GraphError, graph_findings

F = TypeVar("F", bound=Callable[..., Any])
AdapterSpec = Handler | str | AdapterRef | tuple[Handler | str, dict[str, Any]]


class Pipeline:
    """A named graph of steps.

    Each decorated function becomes a step whose route name is the function's
    name (or `name=`). The decorators only build a `PipelineConfig`; the same
    config written as YAML defines the same pipeline.
    """

    def __init__(self, name: str, description: str | None = None) -> None:
        self.name = name
        self.description = description
        self._steps: list[StepConfig] = []
        self.handlers: dict[str, Handler] = {}

    def step(
        self,
        output: str,
        *,
        input: str | None = None,
        name: str | None = None,
        adapters: Sequence[AdapterSpec] = (),
        **options: Any,
    ) -> Callable[[F], F]:
        """Decorate a function as the next step.

        `adapters` run before the decorated function, in order, each feeding
        the next. Options: fan_out, collect, retries, backoff, timeout,
        review, queue, priority, concurrency_key, concurrency_limit, cache.
        """

        def decorate(fn: F) -> F:
            self.add_step(name or fn.__name__, output=output, input=input,
                          adapters=[*adapters, fn], **options)
            return fn

        return decorate

    def add_step(
        self,
        name: str,
        *,
        output: str,
        adapters: Sequence[AdapterSpec],
        input: str | None = None,
        **options: Any,
    ) -> StepConfig:
        """Add a step made only of adapters (registered names or callables)."""
        refs = [self._adapter_ref(spec, name) for spec in adapters]
        default_input = self._steps[-1].output if self._steps else ENTRY_STAGE
        try:
            if isinstance(options.get("backoff"), dict):
                options["backoff"] = Backoff(**options["backoff"])
            step = StepConfig(name=name, input=input or default_input, output=output,
                              adapters=refs, **options)
        except ValueError as exc:
            raise _option_error(self.name, name, exc) from exc
        candidate = [*self._steps, step]
        findings = graph_findings(
            PipelineConfig.model_construct(name=self.name, steps=candidate)
        )
        if findings:
            raise GraphError(self.name, findings)
        self._steps.append(step)
        return step

    def _adapter_ref(self, spec: AdapterSpec, step: str) -> AdapterRef:
        params: dict[str, Any] = {}
        if isinstance(spec, AdapterRef):
            return spec
        if isinstance(spec, tuple):
            spec, params = spec
        if isinstance(spec, str):
            return AdapterRef(name=spec, params=params)
        ref_name = adapter_name(spec)
        if "<locals>" in ref_name or "<lambda>" in ref_name:
            # A function made inside another (a pipeline factory) has the same
            # qualified name each time it is made: qualify it by pipeline and step.
            ref_name = f"{spec.__module__}:{self.name}.{step}.{spec.__name__}"
        self.handlers[ref_name] = spec
        return AdapterRef(name=ref_name, params=params)

    @property
    def config(self) -> PipelineConfig:
        return PipelineConfig(name=self.name, description=self.description,
                              steps=list(self._steps))

    @classmethod
    def from_config(cls, config: PipelineConfig) -> Pipeline:
        pipeline = cls(config.name, config.description)
        pipeline._steps = list(config.steps)
        return pipeline

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={[s.name for s in self._steps]})"


def _option_error(pipeline: str, step: str, exc: ValueError) -> GraphError:
    return GraphError(pipeline, [Finding(
        "invalid_step_options", f"steps.{step}",
        f"step {step!r} has invalid options: {exc}",
        "check the step's name, stages and options",
    )])
