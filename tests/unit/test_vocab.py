"""Each seed endpoint's status vocabulary (SPEC.md, "Statuses")."""

from __future__ import annotations

import pytest

from stageline.domain import vocab
from stageline.domain.status import ExecutionStatus, StepStatus

E = ExecutionStatus
S = StepStatus

SEED_002_VOCAB = frozenset({"running", "completed", "failed", "cancelled", "interrupted"})
SEED_004_VOCAB = frozenset({"pending", "running", "completed", "failed", "cancelled"})
SEED_003_VOCAB = frozenset({"pending", "running", "completed", "completed_with_errors", "failed"})
SEED_003_STEP_VOCAB = frozenset({"pending", "dispatched", "running", "completed", "failed"})
SEED_001_VOCAB = frozenset(
    {"SUCCESSFUL", "ERROR", "IN_PROGRESS", "IN_REVIEW", "CANCELLED", "DROPPED"}
)

EXECUTION_MAPS: list[tuple[str, dict[ExecutionStatus, str], frozenset[str]]] = [
    ("SEED_002", vocab.SEED_002, SEED_002_VOCAB),
    ("SEED_004", vocab.SEED_004, SEED_004_VOCAB),
    ("SEED_003", vocab.SEED_003, SEED_003_VOCAB),
    ("SEED_001", vocab.SEED_001, SEED_001_VOCAB),
]
STEP_MAPS: list[tuple[str, dict[StepStatus, str]]] = [
    ("SEED_003_STEP", vocab.SEED_003_STEP),
    ("SEED_001_STEP", vocab.SEED_001_STEP),
]


@pytest.mark.parametrize(("name", "mapping", "allowed"), EXECUTION_MAPS)
def test_every_execution_status_is_mapped(
    name: str, mapping: dict[ExecutionStatus, str], allowed: frozenset[str]
) -> None:
    assert set(mapping) == set(E), name


@pytest.mark.parametrize(("name", "mapping", "allowed"), EXECUTION_MAPS)
def test_execution_values_within_seed_vocabulary(
    name: str, mapping: dict[ExecutionStatus, str], allowed: frozenset[str]
) -> None:
    outside = {k: v for k, v in mapping.items() if v not in allowed}
    assert not outside, f"{name} answers outside its vocabulary: {outside}"


@pytest.mark.parametrize(("name", "mapping"), STEP_MAPS)
def test_every_step_status_is_mapped(name: str, mapping: dict[StepStatus, str]) -> None:
    assert set(mapping) == set(S), name


def test_seed_003_step_values_within_vocabulary() -> None:
    assert set(vocab.SEED_003_STEP.values()) <= SEED_003_STEP_VOCAB


def test_seed_001_steps_are_upper_case() -> None:
    assert all(v == v.upper() for v in vocab.SEED_001_STEP.values())
    # seed 001's example shows a step answering PROCESSED
    assert vocab.SEED_001_STEP[S.COMPLETED] == "PROCESSED"


@pytest.mark.parametrize(("name", "mapping", "allowed"), EXECUTION_MAPS)
def test_own_words_map_to_themselves(
    name: str, mapping: dict[ExecutionStatus, str], allowed: frozenset[str]
) -> None:
    """A status a seed has a word for is answered with that word."""
    for status in E:
        if status.value in allowed:
            assert mapping[status] == status.value, (name, status)


# --- seeds 002 and 004 --------------------------------------------------------------------

SHARED_002_004: list[tuple[ExecutionStatus, str]] = [
    (E.COMPLETED_WITH_ERRORS, "failed"),
    (E.CANCELLING, "running"),
    (E.IN_REVIEW, "running"),
    (E.DROPPED, "cancelled"),
    (E.RUNNING, "running"),
    (E.COMPLETED, "completed"),
    (E.FAILED, "failed"),
    (E.CANCELLED, "cancelled"),
]


@pytest.mark.parametrize(("status", "word"), SHARED_002_004)
def test_seed_002_spec_mappings(status: ExecutionStatus, word: str) -> None:
    assert vocab.SEED_002[status] == word


@pytest.mark.parametrize(("status", "word"), SHARED_002_004)
def test_seed_004_spec_mappings(status: ExecutionStatus, word: str) -> None:
    assert vocab.SEED_004[status] == word


def test_interrupted_in_seed_002_and_004() -> None:
    assert vocab.SEED_002[E.INTERRUPTED] == "interrupted"
    assert vocab.SEED_004[E.INTERRUPTED] == "failed"


def test_pending_in_seed_002_and_004() -> None:
    assert vocab.SEED_004[E.PENDING] == "pending"
    # seed 002 has no "pending": a pending execution is reported as running
    assert vocab.SEED_002[E.PENDING] == "running"


# --- seed 003 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (E.PENDING, "pending"),
        (E.RUNNING, "running"),
        (E.COMPLETED, "completed"),
        (E.COMPLETED_WITH_ERRORS, "completed_with_errors"),
        (E.FAILED, "failed"),
        (E.IN_REVIEW, "running"),
        (E.CANCELLING, "running"),
    ],
)
def test_seed_003_mappings(status: ExecutionStatus, word: str) -> None:
    assert vocab.SEED_003[status] == word


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (S.PENDING, "pending"),
        (S.RUNNING, "running"),
        (S.COMPLETED, "completed"),
        (S.FAILED, "failed"),
        (S.SKIPPED, "completed"),
    ],
)
def test_seed_003_step_mappings(status: StepStatus, word: str) -> None:
    assert vocab.SEED_003_STEP[status] == word


# --- seed 001 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (E.COMPLETED, "SUCCESSFUL"),
        (E.FAILED, "ERROR"),
        (E.COMPLETED_WITH_ERRORS, "ERROR"),
        (E.PENDING, "IN_PROGRESS"),
        (E.RUNNING, "IN_PROGRESS"),
        (E.CANCELLING, "IN_PROGRESS"),
        (E.IN_REVIEW, "IN_REVIEW"),
        (E.CANCELLED, "CANCELLED"),
        (E.INTERRUPTED, "CANCELLED"),
        (E.DROPPED, "DROPPED"),
    ],
)
def test_seed_001_spec_mappings(status: ExecutionStatus, word: str) -> None:
    assert vocab.SEED_001[status] == word


def test_seed_001_uses_its_whole_vocabulary() -> None:
    assert set(vocab.SEED_001.values()) == SEED_001_VOCAB
