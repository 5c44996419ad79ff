"""The status state machine in stageline.domain.status, checked exhaustively."""

from __future__ import annotations

import itertools

import pytest

from stageline.domain.status import (
    EXECUTION_TERMINAL,
    EXECUTION_TRANSITIONS,
    MESSAGE_TRANSITIONS,
    STEP_TERMINAL,
    STEP_TRANSITIONS,
    ExecutionStatus,
    IllegalTransition,
    MessageStatus,
    StageStatus,
    StepStatus,
    can_execution,
    can_message,
    can_step,
    check_execution,
    check_step,
    is_active,
)

E = ExecutionStatus
S = StepStatus

EXECUTION_LEGAL: list[tuple[ExecutionStatus, ExecutionStatus]] = sorted(
    (src, dst) for dst, sources in EXECUTION_TRANSITIONS.items() for src in sources
)
STEP_LEGAL: list[tuple[StepStatus, StepStatus]] = sorted(
    (src, dst) for dst, sources in STEP_TRANSITIONS.items() for src in sources
)
# Targets present in the tables. A target missing from a table (PENDING: nothing
# moves back to pending) is covered separately below.
EXECUTION_ILLEGAL: list[tuple[ExecutionStatus, ExecutionStatus]] = [
    (src, dst)
    for src, dst in itertools.product(E, E)
    if dst in EXECUTION_TRANSITIONS and src not in EXECUTION_TRANSITIONS[dst]
]
STEP_ILLEGAL: list[tuple[StepStatus, StepStatus]] = [
    (src, dst)
    for src, dst in itertools.product(S, S)
    if dst in STEP_TRANSITIONS and src not in STEP_TRANSITIONS[dst]
]


def _pair_id(pair: object) -> str:
    return str(pair)


# --- the vocabularies -------------------------------------------------------------------


def test_execution_status_values_match_spec() -> None:
    assert {s.value for s in E} == {
        "pending", "running", "in_review", "cancelling", "completed",
        "completed_with_errors", "failed", "cancelled", "interrupted", "dropped",
    }


def test_step_status_values_match_spec() -> None:
    assert {s.value for s in S} == {
        "pending", "running", "in_review", "completed", "failed", "cancelled", "skipped",
    }


def test_stage_status_is_exactly_seed_000() -> None:
    seed_000 = ["pending", "initiated", "processing", "completed", "failed", "cancelled"]
    assert [s.value for s in StageStatus] == seed_000


def test_statuses_are_str_enums() -> None:
    assert isinstance(E.COMPLETED_WITH_ERRORS, str)
    assert str(E.COMPLETED_WITH_ERRORS) == "completed_with_errors"
    assert f"{S.IN_REVIEW}" == "in_review"
    assert E("interrupted") is E.INTERRUPTED


def test_terminal_sets() -> None:
    assert frozenset(
        {E.COMPLETED, E.COMPLETED_WITH_ERRORS, E.FAILED, E.CANCELLED, E.DROPPED}
    ) == EXECUTION_TERMINAL
    # interrupted resumes when the service starts again: not terminal
    assert E.INTERRUPTED not in EXECUTION_TERMINAL
    assert frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.SKIPPED}) == STEP_TERMINAL


# --- legal transitions ---------------------------------------------------------------


def test_tables_only_mention_known_statuses() -> None:
    for dst, sources in EXECUTION_TRANSITIONS.items():
        assert isinstance(dst, E)
        assert all(isinstance(s, E) for s in sources)
        assert dst not in sources, f"self-loop on {dst}"
    for step_dst, step_sources in STEP_TRANSITIONS.items():
        assert isinstance(step_dst, S)
        assert all(isinstance(s, S) for s in step_sources)
        assert step_dst not in step_sources, f"self-loop on {step_dst}"


def test_every_non_pending_status_can_be_entered() -> None:
    assert all(EXECUTION_TRANSITIONS.get(s) for s in E if s != E.PENDING)
    assert all(STEP_TRANSITIONS.get(s) for s in S if s != S.PENDING)
    assert not EXECUTION_TRANSITIONS.get(E.PENDING)
    assert not STEP_TRANSITIONS.get(S.PENDING)


@pytest.mark.parametrize("pair", EXECUTION_LEGAL, ids=_pair_id)
def test_legal_execution_transition_allowed(pair: tuple[ExecutionStatus, ExecutionStatus]) -> None:
    src, dst = pair
    assert can_execution(src, dst)
    check_execution(src, dst)


@pytest.mark.parametrize("pair", STEP_LEGAL, ids=_pair_id)
def test_legal_step_transition_allowed(pair: tuple[StepStatus, StepStatus]) -> None:
    src, dst = pair
    assert can_step(src, dst)
    check_step(src, dst)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (E.PENDING, E.RUNNING),
        (E.RUNNING, E.COMPLETED),
        (E.RUNNING, E.COMPLETED_WITH_ERRORS),
        (E.RUNNING, E.IN_REVIEW),
        (E.IN_REVIEW, E.RUNNING),
        (E.IN_REVIEW, E.DROPPED),
        (E.RUNNING, E.CANCELLING),
        (E.CANCELLING, E.CANCELLED),
        (E.RUNNING, E.INTERRUPTED),
        (E.INTERRUPTED, E.RUNNING),
    ],
)
def test_spec_lifecycle_is_legal(src: ExecutionStatus, dst: ExecutionStatus) -> None:
    assert can_execution(src, dst)


# --- illegal transitions -------------------------------------------------------------


@pytest.mark.parametrize("pair", EXECUTION_ILLEGAL, ids=_pair_id)
def test_illegal_execution_transition_rejected(
    pair: tuple[ExecutionStatus, ExecutionStatus],
) -> None:
    src, dst = pair
    assert not can_execution(src, dst)
    with pytest.raises(IllegalTransition) as info:
        check_execution(src, dst)
    err = info.value
    assert (err.kind, err.current, err.target) == ("execution", src, dst)
    assert repr(str(src)) in str(err)
    assert repr(str(dst)) in str(err)


@pytest.mark.parametrize("pair", STEP_ILLEGAL, ids=_pair_id)
def test_illegal_step_transition_rejected(pair: tuple[StepStatus, StepStatus]) -> None:
    src, dst = pair
    assert not can_step(src, dst)
    with pytest.raises(IllegalTransition) as info:
        check_step(src, dst)
    err = info.value
    assert (err.kind, err.current, err.target) == ("step", src, dst)
    assert repr(str(src)) in str(err)
    assert repr(str(dst)) in str(err)


def test_exhaustive_partition_covers_every_pair() -> None:
    # pairs whose target is missing from the table: the xfail tests below
    exec_missing = len(E) * len(set(E) - set(EXECUTION_TRANSITIONS))
    step_missing = len(S) * len(set(S) - set(STEP_TRANSITIONS))
    assert set(E) - set(EXECUTION_TRANSITIONS) <= {E.PENDING}
    assert set(S) - set(STEP_TRANSITIONS) <= {S.PENDING}
    assert len(EXECUTION_LEGAL) + len(EXECUTION_ILLEGAL) + exec_missing == len(E) ** 2
    assert len(STEP_LEGAL) + len(STEP_ILLEGAL) + step_missing == len(S) ** 2


def test_illegal_transition_message() -> None:
    err = IllegalTransition("execution", "completed", "running")
    assert str(err) == "illegal execution transition 'completed' -> 'running'"
    # with enum members the message still names both values
    err = IllegalTransition("step", S.SKIPPED, S.RUNNING)
    assert str(err).startswith("illegal step transition")
    assert "'skipped'" in str(err)
    assert "'running'" in str(err)


@pytest.mark.parametrize("src", list(E))
def test_execution_transition_into_pending_is_rejected(src: ExecutionStatus) -> None:
    assert not can_execution(src, E.PENDING)
    with pytest.raises(IllegalTransition):
        check_execution(src, E.PENDING)


@pytest.mark.parametrize("src", list(S))
def test_step_transition_into_pending_is_rejected(src: StepStatus) -> None:
    assert not can_step(src, S.PENDING)
    with pytest.raises(IllegalTransition):
        check_step(src, S.PENDING)


# --- terminal statuses -------------------------------------------------------------------


@pytest.mark.parametrize("terminal", sorted(EXECUTION_TERMINAL))
def test_terminal_execution_has_no_outgoing_transition(terminal: ExecutionStatus) -> None:
    for dst, sources in EXECUTION_TRANSITIONS.items():
        assert terminal not in sources
        assert not can_execution(terminal, dst)


@pytest.mark.parametrize("terminal", sorted(STEP_TERMINAL))
def test_terminal_step_has_no_outgoing_transition(terminal: StepStatus) -> None:
    for dst, sources in STEP_TRANSITIONS.items():
        assert terminal not in sources
        assert not can_step(terminal, dst)


def test_interrupted_only_resumes_or_ends_cancelled() -> None:
    outgoing = {dst for dst, sources in EXECUTION_TRANSITIONS.items() if E.INTERRUPTED in sources}
    assert outgoing == {E.RUNNING, E.CANCELLING, E.CANCELLED}


def test_dropped_only_from_review() -> None:
    assert EXECUTION_TRANSITIONS[E.DROPPED] == frozenset({E.IN_REVIEW})


def test_is_active() -> None:
    assert {s for s in E if is_active(s)} == {E.PENDING, E.RUNNING}


# --- messages ------------------------------------------------------------------------------


def test_message_table_covers_every_status() -> None:
    assert set(MESSAGE_TRANSITIONS) == set(MessageStatus)


@pytest.mark.parametrize(
    ("src", "dst", "ok"),
    [
        (MessageStatus.QUEUED, MessageStatus.LEASED, True),
        (MessageStatus.LEASED, MessageStatus.LEASED, True),  # expired lease taken over
        (MessageStatus.LEASED, MessageStatus.QUEUED, True),  # retry
        (MessageStatus.LEASED, MessageStatus.COMPLETED, True),
        (MessageStatus.LEASED, MessageStatus.FAILED, True),
        (MessageStatus.HELD, MessageStatus.QUEUED, True),
        (MessageStatus.QUEUED, MessageStatus.CANCELLED, True),
        (MessageStatus.COMPLETED, MessageStatus.QUEUED, False),
        (MessageStatus.FAILED, MessageStatus.LEASED, False),
        (MessageStatus.QUEUED, MessageStatus.COMPLETED, False),
        (MessageStatus.LEASED, MessageStatus.HELD, False),
    ],
)
def test_message_transitions(src: MessageStatus, dst: MessageStatus, ok: bool) -> None:
    assert can_message(src, dst) is ok


@pytest.mark.parametrize(
    "terminal", [MessageStatus.COMPLETED, MessageStatus.FAILED, MessageStatus.CANCELLED]
)
def test_terminal_message_has_no_outgoing_transition(terminal: MessageStatus) -> None:
    assert not any(can_message(terminal, dst) for dst in MessageStatus)
