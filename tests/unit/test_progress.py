"""Settling an execution's counters (stageline.domain.progress) and stage items
(stageline.domain.items)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageline.domain.items import (
    BYTES_TYPE,
    JSON_TYPE,
    Encoded,
    child_key,
    content_hash,
    decode,
    encode,
)
from stageline.domain.progress import Settlement, StepChange, StepProgress, settle
from stageline.domain.status import (
    EXECUTION_TERMINAL,
    STEP_TERMINAL,
    ExecutionStatus,
    StepStatus,
    can_execution,
    can_step,
)

E = ExecutionStatus
S = StepStatus

# The pipeline under test: map -> fan_out -> map -> collect.
#   0 fetch    reads input
#   1 segment  reads 0's output, fans out
#   2 embed    reads 1's output
#   3 index    collects 2's output (the only leaf)
UPSTREAM: list[int | None] = [None, 0, 1, 2]
COLLECT = [False, False, False, True]

Row = tuple[StepStatus, int, int, int]  # status, outstanding, completed, failed


def four_steps(*rows: Row, review: int | None = None) -> list[StepProgress]:
    assert len(rows) == 4
    return [
        StepProgress(index=i, upstream=UPSTREAM[i], status=status, collect=COLLECT[i],
                     review=review == i, outstanding=outstanding, completed=completed,
                     failed=failed, is_leaf=i == 3)
        for i, (status, outstanding, completed, failed) in enumerate(rows)
    ]


def three_steps(*rows: Row) -> list[StepProgress]:
    """map -> fan_out -> map, with no collect step."""
    return [
        StepProgress(index=i, upstream=UPSTREAM[i], status=status, collect=False,
                     review=False, outstanding=outstanding, completed=completed,
                     failed=failed, is_leaf=i == 2)
        for i, (status, outstanding, completed, failed) in enumerate(rows)
    ]


def idle(status: StepStatus = S.PENDING) -> Row:
    return (status, 0, 0, 0)


def done(completed: int = 1) -> Row:
    return (S.COMPLETED, 0, completed, 0)


def changes(settlement: Settlement) -> dict[int, StepStatus]:
    return {c.index: c.status for c in settlement.steps}


# --- starting -----------------------------------------------------------------------------


def test_pending_execution_with_started_step_goes_running() -> None:
    out = settle(E.PENDING, four_steps((S.PENDING, 1, 0, 0), idle(), idle(), idle()))
    assert out.steps == [StepChange(0, S.RUNNING)]
    assert out.enqueue_collect == []
    assert out.execution == E.RUNNING


def test_pending_execution_whose_step_already_runs_goes_running() -> None:
    out = settle(E.PENDING, four_steps((S.RUNNING, 1, 0, 0), idle(), idle(), idle()))
    assert out.steps == []
    assert out.execution == E.RUNNING


def test_running_execution_mid_flight_has_nothing_to_settle() -> None:
    steps = four_steps((S.RUNNING, 1, 0, 0), idle(), idle(), idle())
    out = settle(E.RUNNING, steps)
    assert out.empty
    assert out == Settlement()


def test_downstream_step_with_work_starts_while_upstream_runs() -> None:
    out = settle(E.RUNNING, four_steps(
        (S.RUNNING, 1, 1, 0), (S.PENDING, 2, 0, 0), idle(), idle(),
    ))
    assert out.steps == [StepChange(1, S.RUNNING)]
    assert out.execution is None


def test_step_waits_for_its_upstream() -> None:
    # step 1 has drained its messages but step 0 may still produce more
    out = settle(E.RUNNING, four_steps(
        (S.RUNNING, 1, 1, 0), (S.RUNNING, 0, 4, 0), idle(), idle(),
    ))
    assert out.empty


# --- completing and failing -------------------------------------------------------------------


def test_step_completes_when_upstream_done_and_nothing_outstanding() -> None:
    out = settle(E.RUNNING, four_steps((S.RUNNING, 0, 1, 0), (S.RUNNING, 3, 0, 0), idle(), idle()))
    assert out.steps == [StepChange(0, S.COMPLETED)]
    assert out.execution is None


def test_completion_cascades_in_one_pass() -> None:
    out = settle(E.RUNNING, four_steps(
        (S.RUNNING, 0, 1, 0), (S.RUNNING, 0, 1, 0), (S.RUNNING, 0, 12, 0), idle(),
    ))
    assert out.steps == [
        StepChange(0, S.COMPLETED),
        StepChange(1, S.COMPLETED),
        StepChange(2, S.COMPLETED),
        StepChange(3, S.RUNNING),
    ]
    assert out.enqueue_collect == [3]
    assert out.execution is None


def test_failed_items_fail_the_step_with_a_count() -> None:
    out = settle(E.RUNNING, four_steps(
        done(), done(), (S.RUNNING, 0, 7, 3), (S.PENDING, 0, 0, 0),
    ))
    assert out.steps[0] == StepChange(2, S.FAILED, "3 of 10 items failed")


def test_step_with_outstanding_work_is_not_finished() -> None:
    out = settle(E.RUNNING, four_steps(done(), done(), (S.RUNNING, 1, 7, 3), idle()))
    assert out.empty


def test_step_whose_upstream_produced_nothing_completes() -> None:
    out = settle(E.RUNNING, three_steps(done(), done(), idle()))
    assert out.steps == [StepChange(2, S.COMPLETED)]
    assert out.execution == E.COMPLETED


# --- collect steps ----------------------------------------------------------------------------


def test_collect_starts_once_its_upstream_completes() -> None:
    out = settle(E.RUNNING, four_steps(done(), done(), done(12), idle()))
    assert out.steps == [StepChange(3, S.RUNNING)]
    assert out.enqueue_collect == [3]
    assert out.execution is None


def test_collect_waits_while_upstream_runs() -> None:
    out = settle(E.RUNNING, four_steps(done(), done(), (S.RUNNING, 2, 10, 0), idle()))
    assert out.empty


@pytest.mark.parametrize(
    "collect_row",
    [(S.RUNNING, 1, 0, 0), (S.PENDING, 1, 0, 0)],
    ids=["running-outstanding", "pending-outstanding"],
)
def test_collect_is_not_enqueued_twice(collect_row: Row) -> None:
    out = settle(E.RUNNING, four_steps(done(), done(), done(12), collect_row))
    assert out.enqueue_collect == []
    if collect_row[0] == S.PENDING:
        assert out.steps == [StepChange(3, S.RUNNING)]
    else:
        assert out.steps == []


def test_collect_with_its_result_completes_the_execution() -> None:
    out = settle(E.RUNNING, four_steps(done(), done(), done(12), (S.RUNNING, 0, 1, 0)))
    assert out.steps == [StepChange(3, S.COMPLETED)]
    assert out.enqueue_collect == []
    assert out.execution == E.COMPLETED


def test_collect_after_failed_upstream_is_cancelled_and_execution_fails() -> None:
    out = settle(E.RUNNING, four_steps(done(), done(), (S.RUNNING, 0, 7, 3), idle()))
    assert out.steps == [
        StepChange(2, S.FAILED, "3 of 10 items failed"),
        StepChange(3, S.CANCELLED, "not run: input stage has failed items"),
    ]
    assert out.enqueue_collect == []
    assert out.execution == E.FAILED


def test_collect_after_cancelled_upstream_is_cancelled() -> None:
    steps = four_steps(done(), done(), idle(S.CANCELLED), idle())
    out = settle(E.RUNNING, steps)
    reason = "not run: input stage has a cancelled producer"
    assert out.steps == [StepChange(3, S.CANCELLED, reason)]
    assert out.execution == E.FAILED


def test_step_after_cancelled_collect_is_cancelled() -> None:
    steps = [*four_steps(done(), done(), (S.RUNNING, 0, 7, 3), idle()),
             StepProgress(4, 3, S.PENDING, False, False, 0, 0, 0, True)]
    steps[3] = replace(steps[3], is_leaf=False)
    out = settle(E.RUNNING, steps)
    assert changes(out) == {2: S.FAILED, 3: S.CANCELLED, 4: S.CANCELLED}
    assert out.steps[-1].error_message == "not run: upstream step was cancelled"
    assert out.execution == E.FAILED


def test_collect_after_failure_further_upstream_is_cancelled() -> None:
    out = settle(E.RUNNING, four_steps(
        done(), (S.RUNNING, 0, 3, 1), (S.RUNNING, 0, 9, 0), idle(),
    ))
    assert changes(out)[1] == S.FAILED
    assert changes(out)[3] == S.CANCELLED
    assert out.enqueue_collect == []
    assert out.execution == E.FAILED


# --- outcomes ---------------------------------------------------------------------------------


def test_all_completed_completes_the_execution() -> None:
    out = settle(E.RUNNING, four_steps(done(), done(), done(), (S.RUNNING, 0, 1, 0)))
    assert out.execution == E.COMPLETED


def test_all_steps_already_terminal_settles_the_execution() -> None:
    out = settle(E.RUNNING, four_steps(done(), done(), done(), done()))
    assert out.steps == []
    assert out.execution == E.COMPLETED


def test_skipped_steps_count_as_done() -> None:
    out = settle(E.RUNNING, four_steps(
        idle(S.SKIPPED), idle(S.SKIPPED), (S.RUNNING, 0, 3, 0), idle(),
    ))
    assert changes(out) == {2: S.COMPLETED, 3: S.RUNNING}
    assert out.enqueue_collect == [3]


def test_some_failures_without_collect_complete_with_errors() -> None:
    out = settle(E.RUNNING, three_steps(done(), done(), (S.RUNNING, 0, 8, 2)))
    assert out.steps == [StepChange(2, S.FAILED, "2 of 10 items failed")]
    assert out.execution == E.COMPLETED_WITH_ERRORS


def test_failure_upstream_of_a_map_leaf_completes_with_errors() -> None:
    out = settle(E.RUNNING, three_steps(done(), (S.RUNNING, 0, 4, 1), (S.RUNNING, 0, 9, 0)))
    assert changes(out) == {1: S.FAILED, 2: S.COMPLETED}
    assert out.execution == E.COMPLETED_WITH_ERRORS


def test_failures_leaving_a_leaf_without_output_fail_the_execution() -> None:
    out = settle(E.RUNNING, three_steps(done(), done(), (S.RUNNING, 0, 0, 5)))
    assert out.steps == [StepChange(2, S.FAILED, "5 of 5 items failed")]
    assert out.execution == E.FAILED


def test_first_step_failing_fails_the_execution() -> None:
    out = settle(E.RUNNING, three_steps((S.RUNNING, 0, 0, 1), idle(), idle()))
    assert changes(out) == {0: S.FAILED, 1: S.COMPLETED, 2: S.COMPLETED}
    assert out.execution == E.FAILED


def test_first_step_failing_cancels_the_collect() -> None:
    out = settle(E.RUNNING, four_steps((S.RUNNING, 0, 0, 1), idle(), idle(), idle()))
    assert out.enqueue_collect == []
    assert changes(out)[3] == S.CANCELLED
    assert out.execution == E.FAILED


# --- review -----------------------------------------------------------------------------------


def test_review_step_completing_puts_execution_in_review() -> None:
    out = settle(E.RUNNING, four_steps(
        done(), (S.RUNNING, 0, 5, 0), (S.PENDING, 0, 0, 0), idle(), review=1,
    ))
    assert out.steps == [StepChange(1, S.IN_REVIEW)]
    assert out.enqueue_collect == []
    assert out.execution == E.IN_REVIEW


def test_step_in_review_keeps_execution_in_review_and_downstream_waiting() -> None:
    out = settle(E.RUNNING, four_steps(
        done(), (S.IN_REVIEW, 0, 5, 0), (S.PENDING, 0, 0, 0), idle(), review=1,
    ))
    assert out.steps == []
    assert out.execution == E.IN_REVIEW


def test_review_step_with_failures_fails_instead_of_review() -> None:
    out = settle(E.RUNNING, four_steps(
        done(), (S.RUNNING, 0, 5, 1), idle(), idle(), review=1,
    ))
    assert out.steps[0] == StepChange(1, S.FAILED, "1 of 6 items failed")
    assert out.execution != E.IN_REVIEW


def test_review_step_with_no_items_moves_legally() -> None:
    out = settle(E.RUNNING, four_steps(done(), done(), idle(), idle(), review=2))
    for change in out.steps:
        assert can_step(S.PENDING, change.status), change


# --- cancelling and inactive executions ---------------------------------------------------------


def test_cancelling_with_outstanding_work_waits() -> None:
    out = settle(E.CANCELLING, four_steps(done(), (S.RUNNING, 1, 3, 0), idle(), idle()))
    assert out.empty


def test_cancelling_with_nothing_outstanding_cancels() -> None:
    out = settle(E.CANCELLING, four_steps(
        done(), (S.RUNNING, 0, 3, 1), (S.IN_REVIEW, 0, 2, 0), idle(),
    ))
    assert out.steps == [
        StepChange(1, S.CANCELLED, "execution cancelled"),
        StepChange(2, S.CANCELLED, "execution cancelled"),
        StepChange(3, S.CANCELLED, "execution cancelled"),
    ]
    assert out.enqueue_collect == []
    assert out.execution == E.CANCELLED


@pytest.mark.parametrize(
    "status",
    [*sorted(EXECUTION_TERMINAL), E.IN_REVIEW, E.INTERRUPTED],
)
def test_inactive_executions_settle_nothing(status: ExecutionStatus) -> None:
    steps = four_steps((S.RUNNING, 0, 1, 0), (S.PENDING, 2, 0, 0), idle(), idle())
    out = settle(status, steps)
    assert out.empty
    assert out == Settlement()


def test_settlement_empty() -> None:
    assert Settlement().empty
    assert not Settlement(steps=[StepChange(0, S.RUNNING)]).empty
    assert not Settlement(enqueue_collect=[3]).empty
    assert not Settlement(execution=E.RUNNING).empty


# --- properties ---------------------------------------------------------------------------------

rows = st.tuples(
    st.sampled_from(list(S)),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
)
pipelines = st.builds(
    lambda r, review: four_steps(*r, review=review),
    st.lists(rows, min_size=4, max_size=4),
    st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
)


def apply(steps: list[StepProgress], out: Settlement) -> list[StepProgress]:
    """What the store does with a settlement: new statuses, one collect message each."""
    new = {c.index: c.status for c in out.steps}
    return [
        replace(s, status=new.get(s.index, s.status),
                outstanding=s.outstanding + (s.index in out.enqueue_collect))
        for s in steps
    ]


@settings(max_examples=400, database=None, deadline=None)
@given(status=st.sampled_from([E.PENDING, E.RUNNING, E.CANCELLING]), steps=pipelines)
def test_settle_never_moves_a_finished_step(
    status: ExecutionStatus, steps: list[StepProgress],
) -> None:
    out = settle(status, steps)
    moved = [c.index for c in out.steps]
    assert len(moved) == len(set(moved))
    for change in out.steps:
        assert steps[change.index].status not in STEP_TERMINAL
    assert len(out.enqueue_collect) == len(set(out.enqueue_collect))
    for index in out.enqueue_collect:
        assert steps[index].collect
        assert changes(out)[index] == S.RUNNING


@settings(max_examples=400, database=None, deadline=None)
@given(status=st.sampled_from([E.PENDING, E.RUNNING]), steps=pipelines)
def test_all_steps_terminal_means_a_terminal_outcome(
    status: ExecutionStatus, steps: list[StepProgress],
) -> None:
    out = settle(status, steps)
    after = apply(steps, out)
    if all(s.status in STEP_TERMINAL for s in after):
        assert out.execution in EXECUTION_TERMINAL
    else:
        assert out.execution not in EXECUTION_TERMINAL


@settings(max_examples=400, database=None, deadline=None)
@given(status=st.sampled_from([E.PENDING, E.RUNNING]), steps=pipelines)
def test_settle_is_idempotent_once_applied(
    status: ExecutionStatus, steps: list[StepProgress],
) -> None:
    out = settle(status, steps)
    again = settle(out.execution or status, apply(steps, out))
    assert again.empty, again


@settings(max_examples=200, database=None, deadline=None)
@given(steps=pipelines)
def test_cancelling_moves_are_legal(steps: list[StepProgress]) -> None:
    out = settle(E.CANCELLING, steps)
    for change in out.steps:
        assert change.status == S.CANCELLED
        assert can_step(steps[change.index].status, change.status)
    if out.execution is not None:
        assert out.execution == E.CANCELLED
        assert can_execution(E.CANCELLING, out.execution)
        assert all(s.status in STEP_TERMINAL for s in apply(steps, out))


# --- items --------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, database=None, deadline=None)
@given(value=json_values)
def test_json_roundtrip(value: Any) -> None:
    encoded = encode(value)
    assert encoded.content_type == JSON_TYPE
    assert decode(encoded.data, encoded.content_type) == value
    assert encoded.content_hash == content_hash(encoded.data)


@settings(max_examples=100, database=None, deadline=None)
@given(data=st.binary(max_size=256))
def test_bytes_roundtrip(data: bytes) -> None:
    encoded = encode(data)
    assert encoded == Encoded(data, BYTES_TYPE, content_hash(data))
    assert decode(encoded.data, encoded.content_type) == data


@pytest.mark.parametrize(
    "value", [bytearray(b"\x00\xff"), memoryview(b"\x00\xff")], ids=["bytearray", "memoryview"],
)
def test_bytes_like_values_are_stored_as_bytes(value: bytearray | memoryview) -> None:
    encoded = encode(value)
    assert encoded.data == b"\x00\xff"
    assert type(encoded.data) is bytes
    assert encoded.content_type == BYTES_TYPE


def test_json_encoding_is_compact_utf8_with_sorted_keys() -> None:
    encoded = encode({"text": "héllo", "n": [1, 2.5, None, True]})
    assert encoded.data == '{"n":[1,2.5,null,true],"text":"héllo"}'.encode()
    assert encode({"b": 1, "a": 2}).content_hash == encode({"a": 2, "b": 1}).content_hash


def test_strings_are_json_not_bytes() -> None:
    encoded = encode("plain")
    assert encoded.content_type == JSON_TYPE
    assert encoded.data == b'"plain"'
    assert decode(encoded.data, JSON_TYPE) == "plain"


def test_decode_unknown_type_returns_raw_bytes() -> None:
    assert decode(b'{"a":1}', "text/markdown") == b'{"a":1}'


def test_float_precision_survives() -> None:
    value = [math.pi, 1e-300, -0.0]
    assert decode(encode(value).data, JSON_TYPE) == value


def test_content_hash() -> None:
    digest = content_hash(b"abc")
    assert digest == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert digest.startswith("sha256:")
    assert len(digest) == len("sha256:") + 64
    assert encode(b"abc").content_hash == digest
    assert encode({"a": 1}).content_hash == encode({"a": 1}).content_hash
    assert encode({"a": 1}).content_hash != encode({"a": 2}).content_hash
    assert encode("abc").content_hash != digest  # JSON "abc" is not the bytes abc


def test_child_key_one_to_one_keeps_parent_key() -> None:
    assert child_key("0", 0, fan_out=False) == "0"
    assert child_key("0/00003", 7, fan_out=False) == "0/00003"


def test_child_key_fan_out_appends_padded_index() -> None:
    assert child_key("0", 0, fan_out=True) == "0/00000"
    assert child_key("0", 42, fan_out=True) == "0/00042"
    assert child_key("0/00042", 1, fan_out=True) == "0/00042/00001"


def test_child_keys_sort_like_their_indexes() -> None:
    keys = [child_key("0", i, fan_out=True) for i in range(0, 1200, 7)]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
