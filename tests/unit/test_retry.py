"""The pure retry policy in stageline.domain.retry."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageline.domain.config import Backoff
from stageline.domain.retry import Fatal, RetryDecision, decide_retry

EXACT = Backoff(initial=1.0, maximum=60.0, multiplier=2.0, jitter=0)
BOOM = RuntimeError("boom")


class Unrecoverable(Fatal):
    pass


@pytest.mark.parametrize("retries", [0, 1, 2, 5])
def test_retries_until_attempt_exceeds_retries(retries: int) -> None:
    for attempt in range(1, retries + 1):
        assert decide_retry(attempt, retries, EXACT, BOOM).retry, attempt
    assert decide_retry(retries + 1, retries, EXACT, BOOM) == RetryDecision(retry=False)
    assert not decide_retry(retries + 7, retries, EXACT, BOOM).retry


def test_no_retries_fails_at_once() -> None:
    assert decide_retry(1, 0, EXACT, BOOM) == RetryDecision(retry=False, delay=0.0)


@pytest.mark.parametrize("error", [Fatal("bad input"), Unrecoverable("worse")])
def test_fatal_is_never_retried(error: Fatal) -> None:
    assert decide_retry(1, 100, EXACT, error) == RetryDecision(retry=False)


def test_fatal_is_an_exception_a_handler_can_raise() -> None:
    assert issubclass(Fatal, Exception)


@pytest.mark.parametrize(
    "error", [ValueError("v"), TimeoutError("t"), KeyboardInterrupt()],
    ids=["ValueError", "TimeoutError", "KeyboardInterrupt"],
)
def test_other_errors_are_retried(error: BaseException) -> None:
    assert decide_retry(1, 1, EXACT, error).retry


def test_exact_exponential_delays_without_jitter() -> None:
    delays = [decide_retry(a, 10, EXACT, BOOM).delay for a in range(1, 9)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_delay_growth_uses_multiplier() -> None:
    backoff = Backoff(initial=0.5, maximum=1000, multiplier=3.0, jitter=0)
    delays = [decide_retry(a, 5, backoff, BOOM).delay for a in range(1, 5)]
    assert delays == [0.5, 1.5, 4.5, 13.5]


def test_delay_capped_at_maximum() -> None:
    backoff = Backoff(initial=10.0, maximum=15.0, multiplier=2.0, jitter=0)
    assert decide_retry(1, 100, backoff, BOOM).delay == 10.0
    assert decide_retry(2, 100, backoff, BOOM).delay == 15.0
    assert decide_retry(100, 100, backoff, BOOM).delay == 15.0


def test_multiplier_one_is_constant() -> None:
    backoff = Backoff(initial=2.0, multiplier=1.0, jitter=0)
    assert {decide_retry(a, 10, backoff, BOOM).delay for a in range(1, 11)} == {2.0}


def test_zero_initial_retries_immediately() -> None:
    backoff = Backoff(initial=0, jitter=0.5)
    assert decide_retry(3, 5, backoff, BOOM, random.Random(1)) == RetryDecision(True, 0.0)


def test_jitter_zero_ignores_rand() -> None:
    class Exploding(random.Random):
        def uniform(self, a: float, b: float) -> float:
            raise AssertionError("jitter=0 must not draw a random number")

    assert decide_retry(2, 3, EXACT, BOOM, Exploding()).delay == 2.0


def test_jitter_is_reproducible_with_seeded_random() -> None:
    backoff = Backoff(initial=1.0, maximum=100.0, multiplier=2.0, jitter=0.5)
    first = [decide_retry(a, 10, backoff, BOOM, random.Random(42)).delay for a in range(1, 6)]
    second = [decide_retry(a, 10, backoff, BOOM, random.Random(42)).delay for a in range(1, 6)]
    assert first == second


def test_jitter_spreads_delays() -> None:
    backoff = Backoff(initial=4.0, jitter=0.5)
    rand = random.Random(7)
    delays = [decide_retry(1, 1, backoff, BOOM, rand).delay for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 100
    assert min(delays) < 2.5
    assert max(delays) > 3.5


def test_jitter_without_rand_uses_module_random() -> None:
    backoff = Backoff(initial=4.0, jitter=1.0)
    delay = decide_retry(1, 1, backoff, BOOM).delay
    assert 0.0 <= delay <= 4.0


@settings(max_examples=300, database=None, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=60),
    retries=st.integers(min_value=0, max_value=100),
    initial=st.floats(min_value=0, max_value=3600),
    maximum=st.floats(min_value=0, max_value=86400),
    multiplier=st.floats(min_value=1, max_value=10),
    jitter=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_within_jitter_band(
    attempt: int, retries: int, initial: float, maximum: float,
    multiplier: float, jitter: float, seed: int,
) -> None:
    backoff = Backoff(initial=initial, maximum=maximum, multiplier=multiplier, jitter=jitter)
    decision = decide_retry(attempt, retries, backoff, BOOM, random.Random(seed))
    assert decision.retry == (attempt <= retries)
    if not decision.retry:
        assert decision.delay == 0.0
        return
    base = min(maximum, initial * multiplier ** (attempt - 1))
    assert base * (1 - jitter) - 1e-9 <= decision.delay <= base + 1e-9
    assert decision.delay <= maximum + 1e-9
    if jitter == 0:
        assert decision.delay == base
