"""Replay planning: which steps of the chosen config run again, which stages
come from the parent, what the child's stages hold afterwards, and whether
the chosen config fits the parent's stages. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stageline.domain.config import PipelineConfig, StepConfig
from stageline.domain.graph import ENTRY_STAGE
from stageline.domain.item_schemas import item_problem, same_schema

# How many of the items a replay would publish are checked against the
# route's input_schema (the first ones by key): enough to catch a changed
# shape, few enough to read while planning.
SAMPLE_SIZE = 20


class ReplaySource(StrEnum):
    STORAGE = "storage"  # every stored item of from_stage (under from_path, if given)
    LINEAGE = "lineage"  # only items that did not complete at to_route in the parent
    MANUAL = "manual"  # exactly the items at from_path


class StageMode(StrEnum):
    """How a child execution reads a stage it did not (fully) compute itself."""

    ALL = "all"  # the whole stage is the parent's: a step before to_route
    FILL = "fill"  # the child's items, plus the parent's items for keys it did not replay


class ReplayRejected(Exception):
    """A replay request that cannot be planned; nothing is created."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ReusedStage:
    stage: str
    mode: StageMode
    source_step: str | None  # the parent's step that wrote it; None for the entry stage


@dataclass(frozen=True)
class ReplayPlan:
    to_route_index: int
    run_steps: list[int]  # to_route and everything downstream of it, in config order
    skip_steps: list[int]  # steps before (or beside) to_route: their stages come from the parent
    reused: list[ReusedStage] = field(default_factory=list)
    producers: dict[str, int] = field(default_factory=dict)  # stage -> child step writing it

    def reused_mode(self, stage: str) -> StageMode | None:
        return next((r.mode for r in self.reused if r.stage == stage), None)


def plan_replay(parent: PipelineConfig, child: PipelineConfig, from_stage: str, to_route: str,
                source: ReplaySource, from_path: str | None) -> ReplayPlan:
    """Plan a replay of `parent`'s run into `child` (the same or another config)."""
    route = _route(child, to_route)
    if from_stage != ENTRY_STAGE and from_stage not in {s.output for s in parent.steps}:
        raise ReplayRejected("unknown_stage",
                             f"stage {from_stage!r} is not a stage of the parent execution")
    if child.steps[route].input != from_stage:
        raise ReplayRejected(
            "route_does_not_consume_stage",
            f"route {to_route!r} reads stage {child.steps[route].input!r}, not {from_stage!r}")
    if source == ReplaySource.MANUAL and not from_path:
        raise ReplayRejected("from_path_required", "a manual replay needs from_path")
    downstream = _downstream(child, route)
    skip = [i for i in range(len(child.steps)) if i not in downstream]
    reused = _reused_stages(parent, child, skip, downstream, source, from_path)
    producers = {s.output: i for i, s in enumerate(child.steps)}
    return ReplayPlan(route, sorted(downstream), skip, reused, producers)


def _route(config: PipelineConfig, name: str) -> int:
    for index, step in enumerate(config.steps):
        if step.name == name:
            return index
    raise ReplayRejected("unknown_route", f"route {name!r} is not a step of the chosen config")


def _downstream(config: PipelineConfig, start: int) -> set[int]:
    """`start` and every step that reads, directly or not, what it writes."""
    reached = {start}
    stages = {config.steps[start].output}
    changed = True
    while changed:
        changed = False
        for index, step in enumerate(config.steps):
            if index not in reached and step.input in stages:
                reached.add(index)
                stages.add(step.output)
                changed = True
    return reached


def _reused_stages(parent: PipelineConfig, child: PipelineConfig, skip: list[int],
                   downstream: set[int], source: ReplaySource,
                   from_path: str | None) -> list[ReusedStage]:
    producer = {s.output: s.name for s in parent.steps}
    reused = []
    for index in skip:
        stage = child.steps[index].output
        if stage not in producer:
            raise ReplayRejected(
                "stage_missing_in_parent",
                f"step {child.steps[index].name!r} would need stage {stage!r} from the parent, "
                "which never wrote it")
        reused.append(ReusedStage(stage, StageMode.ALL, producer[stage]))
    if _partial(source, from_path):
        for index in sorted(downstream):
            step = child.steps[index]
            if _fed_by_collect(child, index, downstream) or step.output not in producer:
                continue
            reused.append(ReusedStage(step.output, StageMode.FILL, producer[step.output]))
    return reused


def _partial(source: ReplaySource, from_path: str | None) -> bool:
    """Whether only some items are replayed, so the parent's others fill in."""
    return source != ReplaySource.STORAGE or bool(from_path)


def _fed_by_collect(config: PipelineConfig, index: int, downstream: set[int]) -> bool:
    """A replayed collect step, or anything after one, is recomputed whole: no filling."""
    producer = {s.output: i for i, s in enumerate(config.steps)}
    current: int | None = index
    while current is not None and current in downstream:
        if config.steps[current].collect:
            return True
        current = producer.get(config.steps[current].input)
    return False


# --- does the chosen config fit the parent's stages? -----------------------------------


def check_item_shapes(route: StepConfig, stage: str,
                      sample: Sequence[tuple[str, Any]]) -> None:
    """Raise `item_shape_mismatch` when sampled (key, value) items of `stage` do
    not fit the route's declared input_schema; no schema, no check."""
    if route.input_schema is None:
        return
    misfits = [(key, problem) for key, value in sample
               if (problem := item_problem(route.input_schema, value)) is not None]
    if misfits:
        key, problem = misfits[0]
        raise ReplayRejected(
            "item_shape_mismatch",
            f"{len(misfits)} of {len(sample)} sampled items of stage {stage!r} do not fit "
            f"the input_schema of route {route.name!r}; item {key!r}: {problem}")


def shape_warnings(parent: PipelineConfig, child: PipelineConfig,
                   replay_plan: ReplayPlan) -> list[tuple[str, str]]:
    """What the replay would run with but a user should know, as (code, message):
    `stage_shape_changed` and `stage_removed`."""
    return _changed_stages(parent, child, replay_plan) + _removed_stages(parent, child)


def _changed_stages(parent: PipelineConfig, child: PipelineConfig,
                    replay_plan: ReplayPlan) -> list[tuple[str, str]]:
    """Stages whose parent items the child keeps, where the child's step that
    writes the stage declares another output_schema than the parent's did."""
    written_by = {s.output: s for s in parent.steps}
    found = []
    for reused in replay_plan.reused:
        before = written_by.get(reused.stage)
        now = child.steps[replay_plan.producers[reused.stage]]
        if (before is None or before.output_schema is None or now.output_schema is None
                or same_schema(before.output_schema, now.output_schema)):
            continue
        held = ("is reused from the parent" if reused.mode == StageMode.ALL else
                "keeps the parent's items for the keys not replayed, so it mixes both shapes")
        found.append(("stage_shape_changed",
                      f"stage {reused.stage!r} {held}: the parent's step {before.name!r} "
                      f"declared another output_schema than step {now.name!r} of the chosen "
                      "config"))
    return found


def _removed_stages(parent: PipelineConfig, child: PipelineConfig) -> list[tuple[str, str]]:
    kept = {s.output for s in child.steps}
    return [("stage_removed",
             f"stage {s.output!r} (written by the parent's step {s.name!r}) is not a stage of "
             "the chosen config: the replay will not have it")
            for s in parent.steps if s.output not in kept]
