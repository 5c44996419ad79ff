"""Checks and orderings over a pipeline's graph of steps and stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stageline.domain.config import PipelineConfig, StepConfig

ENTRY_STAGE = "input"


@dataclass(frozen=True)
class Finding:
    """One problem in a config, with a stable code and a way to fix it."""

    code: str
    path: str
    message: str
    remedy: str


class GraphError(Exception):
    """A pipeline whose graph cannot run; names the offending steps."""

    def __init__(self, pipeline: str, findings: list[Finding]) -> None:
        lines = "; ".join(f"{f.path}: {f.message}" for f in findings)
        super().__init__(f"pipeline {pipeline!r} is invalid: {lines}")
        self.pipeline = pipeline
        self.findings = findings


def graph_findings(config: PipelineConfig) -> list[Finding]:
    findings: list[Finding] = []
    findings += _duplicate_names(config.steps)
    findings += _shared_outputs(config.steps)
    findings += _bad_options(config.steps)
    findings += _unknown_inputs(config.steps)
    if not findings:
        findings += _cycles(config.steps)
    return findings


def _duplicate_names(steps: list[StepConfig]) -> list[Finding]:
    seen: set[str] = set()
    out: list[Finding] = []
    for i, step in enumerate(steps):
        if step.name in seen:
            out.append(Finding(
                "duplicate_step_name", f"steps[{i}].name",
                f"step {step.name!r} is defined twice",
                "give every step a unique name",
            ))
        seen.add(step.name)
    return out


def _shared_outputs(steps: list[StepConfig]) -> list[Finding]:
    writers: dict[str, str] = {}
    out: list[Finding] = []
    for i, step in enumerate(steps):
        if step.output == ENTRY_STAGE:
            out.append(Finding(
                "output_is_entry_stage", f"steps[{i}].output",
                f"step {step.name!r} writes the entry stage {ENTRY_STAGE!r}",
                "choose another output stage name",
            ))
        elif step.output in writers:
            out.append(Finding(
                "stage_written_twice", f"steps[{i}].output",
                f"steps {writers[step.output]!r} and {step.name!r} both write stage "
                f"{step.output!r}",
                "give each step its own output stage",
            ))
        writers.setdefault(step.output, step.name)
    return out


def _bad_options(steps: list[StepConfig]) -> list[Finding]:
    out: list[Finding] = []
    for i, step in enumerate(steps):
        if step.fan_out and step.collect:
            out.append(Finding(
                "fan_out_and_collect", f"steps[{i}]",
                f"step {step.name!r} sets both fan_out and collect",
                "split it into a collect step followed by a fan_out step",
            ))
        if step.input == step.output:
            out.append(Finding(
                "step_reads_own_output", f"steps[{i}].input",
                f"step {step.name!r} reads the stage it writes",
                "read the previous step's output stage",
            ))
    return out


def _unknown_inputs(steps: list[StepConfig]) -> list[Finding]:
    stages = {ENTRY_STAGE} | {s.output for s in steps}
    return [
        Finding(
            "unknown_input_stage", f"steps[{i}].input",
            f"step {step.name!r} reads stage {step.input!r}, which no step writes",
            f"use one of: {', '.join(sorted(stages))}",
        )
        for i, step in enumerate(steps)
        if step.input not in stages
    ]


def _cycles(steps: list[StepConfig]) -> list[Finding]:
    producer = {s.output: s for s in steps}
    out: list[Finding] = []
    for i, step in enumerate(steps):
        seen = {step.name}
        stage = step.input
        while stage in producer:
            upstream = producer[stage]
            if upstream.name in seen:
                out.append(Finding(
                    "cycle", f"steps[{i}]",
                    f"step {step.name!r} is part of a cycle through stage {stage!r}",
                    "make the graph acyclic: every stage must lead back to 'input'",
                ))
                break
            seen.add(upstream.name)
            stage = upstream.input
    return out


def topological_order(steps: list[StepConfig]) -> list[StepConfig]:
    """Steps ordered so that each comes after the producer of its input.

    Stable: among steps that are ready, the config's own order is kept.
    """
    done_stages = {ENTRY_STAGE}
    remaining = list(steps)
    ordered: list[StepConfig] = []
    while remaining:
        ready = [s for s in remaining if s.input in done_stages]
        if not ready:
            raise ValueError("graph has a cycle or an unknown input")
        step = ready[0]
        ordered.append(step)
        done_stages.add(step.output)
        remaining.remove(step)
    return ordered


def producer_index(steps: list[StepConfig]) -> dict[str, int]:
    """Output stage -> index of the step that writes it."""
    return {s.output: i for i, s in enumerate(steps)}
