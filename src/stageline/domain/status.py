"""Statuses and the transitions between them, declared as data.

Every status change in the store is one UPDATE guarded by the sources that
these tables allow for the target (`store/guarded.py`), so an illegal move
is a typed conflict, never a silent overwrite.
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    IN_REVIEW = "in_review"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    DROPPED = "dropped"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    IN_REVIEW = "in_review"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class StageStatus(StrEnum):
    """Lineage `stage_status`, exactly the values of seed 000."""

    PENDING = "pending"
    INITIATED = "initiated"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class MessageStatus(StrEnum):
    """State of one message in the work queue."""

    QUEUED = "queued"  # ready to be claimed once available_at has passed
    LEASED = "leased"  # claimed by a worker until lease_expires_at
    HELD = "held"  # waiting behind a review gate
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class IllegalTransition(Exception):
    """A status change that the state machine does not allow."""

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"illegal {kind} transition {str(current)!r} -> {str(target)!r}")
        self.kind = kind
        self.current = current
        self.target = target


E = ExecutionStatus
S = StepStatus
M = MessageStatus

EXECUTION_TERMINAL: frozenset[ExecutionStatus] = frozenset(
    {E.COMPLETED, E.COMPLETED_WITH_ERRORS, E.FAILED, E.CANCELLED, E.DROPPED}
)

# target status -> the statuses it may be entered from
EXECUTION_TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    E.PENDING: frozenset(),  # only ever the first status
    E.RUNNING: frozenset({E.PENDING, E.IN_REVIEW, E.INTERRUPTED}),
    E.IN_REVIEW: frozenset({E.PENDING, E.RUNNING}),
    E.CANCELLING: frozenset({E.PENDING, E.RUNNING, E.IN_REVIEW, E.INTERRUPTED}),
    E.COMPLETED: frozenset({E.PENDING, E.RUNNING}),
    E.COMPLETED_WITH_ERRORS: frozenset({E.PENDING, E.RUNNING}),
    E.FAILED: frozenset({E.PENDING, E.RUNNING}),
    E.CANCELLED: frozenset({E.PENDING, E.CANCELLING, E.INTERRUPTED}),
    E.INTERRUPTED: frozenset({E.PENDING, E.RUNNING}),
    E.DROPPED: frozenset({E.IN_REVIEW}),
}

STEP_TERMINAL: frozenset[StepStatus] = frozenset(
    {S.COMPLETED, S.FAILED, S.CANCELLED, S.SKIPPED}
)

STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    S.PENDING: frozenset(),
    S.RUNNING: frozenset({S.PENDING, S.IN_REVIEW}),
    S.IN_REVIEW: frozenset({S.PENDING, S.RUNNING}),  # PENDING: a review step given no items
    S.COMPLETED: frozenset({S.PENDING, S.RUNNING, S.IN_REVIEW}),
    S.FAILED: frozenset({S.PENDING, S.RUNNING}),
    S.CANCELLED: frozenset({S.PENDING, S.RUNNING, S.IN_REVIEW}),
    S.SKIPPED: frozenset({S.PENDING}),
}

MESSAGE_TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    M.QUEUED: frozenset({M.LEASED, M.HELD}),  # LEASED->QUEUED: retry or lease given back
    M.LEASED: frozenset({M.QUEUED, M.LEASED}),  # LEASED->LEASED: expired lease taken over
    M.HELD: frozenset(),
    M.COMPLETED: frozenset({M.LEASED}),
    M.FAILED: frozenset({M.LEASED}),
    M.CANCELLED: frozenset({M.QUEUED, M.HELD}),
}


def can_execution(current: ExecutionStatus, target: ExecutionStatus) -> bool:
    return current in EXECUTION_TRANSITIONS[target]


def check_execution(current: ExecutionStatus, target: ExecutionStatus) -> None:
    if not can_execution(current, target):
        raise IllegalTransition("execution", current, target)


def can_step(current: StepStatus, target: StepStatus) -> bool:
    return current in STEP_TRANSITIONS[target]


def check_step(current: StepStatus, target: StepStatus) -> None:
    if not can_step(current, target):
        raise IllegalTransition("step", current, target)


def can_message(current: MessageStatus, target: MessageStatus) -> bool:
    return current in MESSAGE_TRANSITIONS[target]


def is_active(status: ExecutionStatus) -> bool:
    """Whether workers should still run this execution's messages."""
    return status in (E.PENDING, E.RUNNING)
