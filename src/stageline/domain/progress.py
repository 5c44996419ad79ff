"""Deciding what an execution's counters mean: which steps are done, which
collect steps may start, and how the execution ends. Pure: values in, a
`Settlement` out; the store applies it in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

from stageline.domain.status import STEP_TERMINAL
from stageline.domain.status import ExecutionStatus as E
from stageline.domain.status import StepStatus as S


@dataclass(frozen=True)
class StepProgress:
    index: int
    upstream: int | None  # index of the step writing this step's input; None = entry stage
    status: S
    collect: bool
    review: bool
    outstanding: int  # messages queued, leased or held
    completed: int
    failed: int
    is_leaf: bool  # no step reads this step's output


@dataclass(frozen=True)
class StepChange:
    index: int
    status: S
    error_message: str | None = None


@dataclass
class Settlement:
    steps: list[StepChange] = field(default_factory=list)
    enqueue_collect: list[int] = field(default_factory=list)
    execution: E | None = None

    @property
    def empty(self) -> bool:
        return not (self.steps or self.enqueue_collect or self.execution)


def settle(status: E, steps: list[StepProgress]) -> Settlement:
    """Everything that follows from the counters, in one pass over the steps
    (given in topological order, so an upstream's new status is seen)."""
    out = Settlement()
    if status == E.CANCELLING:
        return _settle_cancelling(steps)
    if status not in (E.PENDING, E.RUNNING):
        return out
    current = {s.index: s.status for s in steps}
    tainted = _tainted(steps)
    for step in steps:
        change = _settle_step(step, current, tainted)
        if change is None:
            continue
        if change.status == S.RUNNING and step.collect and not _started(step):
            out.enqueue_collect.append(step.index)
        current[step.index] = change.status
        out.steps.append(change)
    if any(s == S.IN_REVIEW for s in current.values()):
        out.execution = E.IN_REVIEW
    elif all(s in STEP_TERMINAL for s in current.values()):
        out.execution = _outcome(steps, current)
    elif status == E.PENDING and any(s != S.PENDING for s in current.values()):
        out.execution = E.RUNNING
    return out


def _tainted(steps: list[StepProgress]) -> set[int]:
    """Steps whose output is incomplete: they or a step upstream lost items."""
    tainted: set[int] = set()
    for step in steps:  # topological order: an upstream is decided first
        if step.failed or step.status == S.CANCELLED or step.upstream in tainted:
            tainted.add(step.index)
    return tainted


def _settle_step(step: StepProgress, current: dict[int, S],
                 tainted: set[int]) -> StepChange | None:
    if step.status not in (S.PENDING, S.RUNNING):
        return None
    up = None if step.upstream is None else current[step.upstream]
    incomplete = step.upstream is not None and step.upstream in tainted
    if step.collect and incomplete and (up in STEP_TERMINAL):
        reason = "a cancelled producer" if up == S.CANCELLED else "failed items"
        return StepChange(step.index, S.CANCELLED, f"not run: input stage has {reason}")
    if up == S.CANCELLED and step.outstanding == 0:
        return StepChange(step.index, S.CANCELLED, "not run: upstream step was cancelled")
    upstream_done = up is None or up in STEP_TERMINAL
    if not upstream_done:
        if step.status == S.PENDING and _started(step):
            return StepChange(step.index, S.RUNNING)
        return None
    if step.collect and not _started(step):
        return StepChange(step.index, S.RUNNING)  # the store enqueues the one collect message
    if step.outstanding:
        return StepChange(step.index, S.RUNNING) if step.status == S.PENDING else None
    if step.failed:
        total = step.failed + step.completed
        return StepChange(step.index, S.FAILED, f"{step.failed} of {total} items failed")
    if step.review:
        return StepChange(step.index, S.IN_REVIEW)
    return StepChange(step.index, S.COMPLETED)


def _started(step: StepProgress) -> bool:
    return bool(step.outstanding or step.completed or step.failed)


def _outcome(steps: list[StepProgress], current: dict[int, S]) -> E:
    blocked = any(s == S.CANCELLED for s in current.values())
    failed_any = any(current[s.index] == S.FAILED for s in steps)
    if not failed_any and not blocked:
        return E.COMPLETED
    leaves_have_output = all(s.completed > 0 for s in steps if s.is_leaf)
    if failed_any and not blocked and leaves_have_output:
        return E.COMPLETED_WITH_ERRORS
    return E.FAILED


def _settle_cancelling(steps: list[StepProgress]) -> Settlement:
    out = Settlement()
    if any(s.outstanding for s in steps):
        return out  # in-flight work is still draining
    for step in steps:
        if step.status not in STEP_TERMINAL:
            out.steps.append(StepChange(step.index, S.CANCELLED, "execution cancelled"))
    out.execution = E.CANCELLED
    return out
