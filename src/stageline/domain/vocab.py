"""How each seed endpoint names our statuses (SPEC.md, "Statuses")."""

from __future__ import annotations

from stageline.domain.status import ExecutionStatus as E
from stageline.domain.status import StepStatus as S

# seed 002: running completed failed cancelled interrupted
SEED_002: dict[E, str] = {
    E.PENDING: "running",
    E.RUNNING: "running",
    E.IN_REVIEW: "running",
    E.CANCELLING: "running",
    E.COMPLETED: "completed",
    E.COMPLETED_WITH_ERRORS: "failed",
    E.FAILED: "failed",
    E.CANCELLED: "cancelled",
    E.INTERRUPTED: "interrupted",
    E.DROPPED: "cancelled",
}

# seed 004: pending running completed failed cancelled
SEED_004: dict[E, str] = {
    E.PENDING: "pending",
    E.RUNNING: "running",
    E.IN_REVIEW: "running",
    E.CANCELLING: "running",
    E.COMPLETED: "completed",
    E.COMPLETED_WITH_ERRORS: "failed",
    E.FAILED: "failed",
    E.CANCELLED: "cancelled",
    E.INTERRUPTED: "failed",
    E.DROPPED: "cancelled",
}

# seed 003: pending running completed completed_with_errors failed
SEED_003: dict[E, str] = {
    E.PENDING: "pending",
    E.RUNNING: "running",
    E.IN_REVIEW: "running",
    E.CANCELLING: "running",
    E.COMPLETED: "completed",
    E.COMPLETED_WITH_ERRORS: "completed_with_errors",
    E.FAILED: "failed",
    E.CANCELLED: "failed",
    E.INTERRUPTED: "failed",
    E.DROPPED: "failed",
}

# seed 003 steps: pending dispatched running completed failed
SEED_003_STEP: dict[S, str] = {
    S.PENDING: "pending",
    S.RUNNING: "running",
    S.IN_REVIEW: "completed",
    S.COMPLETED: "completed",
    S.FAILED: "failed",
    S.CANCELLED: "failed",
    S.SKIPPED: "completed",
}

# seed 001: SUCCESSFUL ERROR IN_PROGRESS IN_REVIEW CANCELLED DROPPED
SEED_001: dict[E, str] = {
    E.PENDING: "IN_PROGRESS",
    E.RUNNING: "IN_PROGRESS",
    E.CANCELLING: "IN_PROGRESS",
    E.IN_REVIEW: "IN_REVIEW",
    E.COMPLETED: "SUCCESSFUL",
    E.COMPLETED_WITH_ERRORS: "ERROR",
    E.FAILED: "ERROR",
    E.CANCELLED: "CANCELLED",
    E.INTERRUPTED: "CANCELLED",
    E.DROPPED: "DROPPED",
}

# seed 001 steps, in the same upper-case style
SEED_001_STEP: dict[S, str] = {
    S.PENDING: "PENDING",
    S.RUNNING: "IN_PROGRESS",
    S.IN_REVIEW: "IN_REVIEW",
    S.COMPLETED: "PROCESSED",
    S.FAILED: "ERROR",
    S.CANCELLED: "CANCELLED",
    S.SKIPPED: "SKIPPED",
}
