"""`Pipeline`: build a pipeline config from decorated Python functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from stageline.adapters.registry import Handler, adapter_name
from stageline.domain.config import AdapterRef, Backoff, PipelineConfig, StepConfig
from stageline.domain.graph import ENTRY_STAGE, Finding, GraphError, graph_findings
from stageline.domain.item_schemas import schema_findings
from stageline.sdk.schemas import input_schema_of, output_schema_of

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
        review, queue, priority, concurrency_key, concurrency_limit, cache,
        input_schema, output_schema (JSON Schemas of one item; by default
        derived from the first adapter's item parameter and the decorated
        function's return annotation, see `stageline.sdk.schemas`).
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
        """Add a step made only of adapters (registered names or callables).

        Item schemas not given as `input_schema`/`output_schema` are derived
        from the annotations of the first adapter (the item it reads) and the
        last one (the item it returns), when those are Python functions.
        """
        refs = [self._adapter_ref(spec, name) for spec in adapters]
        default_input = self._steps[-1].output if self._steps else ENTRY_STAGE
        try:
            if isinstance(options.get("backoff"), dict):
                options["backoff"] = Backoff(**options["backoff"])
            step = StepConfig(name=name, input=input or default_input, output=output,
                              adapters=refs, **_derived_schemas(adapters, options), **options)
        except ValueError as exc:
            raise _option_error(self.name, name, exc) from exc
        candidate = [*self._steps, step]
        findings = graph_findings(
            PipelineConfig.model_construct(name=self.name, steps=candidate)
        ) + schema_findings([step], first_index=len(self._steps))
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


def _derived_schemas(adapters: Sequence[AdapterSpec],
                     options: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The item schemas the options leave out, from the chain's first and last
    adapters; a registered name or an import path gives none."""
    derived: dict[str, dict[str, Any] | None] = {}
    if adapters and "input_schema" not in options:
        fn, params = _callable(adapters[0])
        if fn is not None:
            derived["input_schema"] = input_schema_of(fn, params,
                                                      collect=bool(options.get("collect")))
    if adapters and "output_schema" not in options:
        fn, _ = _callable(adapters[-1])
        if fn is not None:
            derived["output_schema"] = output_schema_of(fn,
                                                        fan_out=bool(options.get("fan_out")))
    return derived


def _callable(spec: AdapterSpec) -> tuple[Handler | None, dict[str, Any]]:
    if isinstance(spec, tuple):
        fn, params = spec
        return (None if isinstance(fn, str) else fn), params
    if isinstance(spec, str | AdapterRef):
        return None, {}
    return spec, {}


def _option_error(pipeline: str, step: str, exc: ValueError) -> GraphError:
    return GraphError(pipeline, [Finding(
        "invalid_step_options", f"steps.{step}",
        f"step {step!r} has invalid options: {exc}",
        "check the step's name, stages and options",
    )])
