"""The retry policy: a pure decision from an attempt's outcome."""

from __future__ import annotations

import random
from dataclasses import dataclass

from stageline.domain.config import Backoff


class Fatal(Exception):
    """Raised by a handler to fail its item at once, without further retries."""


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0


def decide_retry(
    attempt: int,
    retries: int,
    backoff: Backoff,
    error: BaseException,
    rand: random.Random | None = None,
) -> RetryDecision:
    """Retry `attempt` (1-based) again, or fail the message for good?

    The delay grows exponentially from `backoff.initial`, capped at
    `backoff.maximum`; `jitter` spreads retries of many items over time so
    they do not hammer a recovering dependency all at once.
    """
    if isinstance(error, Fatal) or attempt > retries:
        return RetryDecision(retry=False)
    base = min(backoff.maximum, backoff.initial * backoff.multiplier ** (attempt - 1))
    spread = (rand or random).uniform(1.0 - backoff.jitter, 1.0) if backoff.jitter else 1.0
    return RetryDecision(retry=True, delay=base * spread)
