"""Per-step counters, kept in step with the messages in the same transaction.

Reading the counters is how an execution knows its progress without
counting messages: `outstanding` are queued, leased or held messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Boolean, Connection, and_, bindparam, case, update

from stageline.domain.status import StepStatus
from stageline.store.bulk import Bulk
from stageline.store.tables import step_runs
from stageline.store.types import UTCDateTime, utcnow

StepKey = tuple[UUID, int]


@dataclass
class StepDelta:
    outstanding: int = 0
    completed: int = 0
    failed: int = 0
    attempts: int = 0
    handler_seconds: float = 0.0
    start: bool = False  # a message of this step was leased here: pending -> running


def add_outstanding(conn: Connection, keys: Iterable[StepKey]) -> None:
    """One more outstanding message per key given."""
    deltas = {key: StepDelta(outstanding=n) for key, n in Counter(keys).items()}
    apply_deltas(conn, deltas)


# The same guard as a claim's start of a step (only pending becomes running),
# folded into the counters' UPDATE when a commit leases the step's next message.
_STARTING = and_(bindparam("d_start", type_=Boolean()),
                 step_runs.c.status == StepStatus.PENDING)
_APPLY = Bulk(
    update(step_runs)
    .where(step_runs.c.execution_id == bindparam("k_exec"),
           step_runs.c.step_index == bindparam("k_index"))
    .values(
        outstanding=step_runs.c.outstanding + bindparam("d_out"),
        completed=step_runs.c.completed + bindparam("d_done"),
        failed=step_runs.c.failed + bindparam("d_failed"),
        attempts=step_runs.c.attempts + bindparam("d_attempts"),
        handler_seconds=step_runs.c.handler_seconds + bindparam("d_seconds"),
        status=case((_STARTING, str(StepStatus.RUNNING)), else_=step_runs.c.status),
        started_at=case((_STARTING, bindparam("d_now", type_=UTCDateTime())),
                        else_=step_runs.c.started_at),
    )
)


def apply_deltas(conn: Connection, deltas: dict[StepKey, StepDelta]) -> None:
    if not deltas:
        return
    # Sorted keys: concurrent transactions lock rows in one order, so no deadlock.
    now = utcnow()
    rows = [
        {"k_exec": e, "k_index": i, "d_out": d.outstanding, "d_done": d.completed,
         "d_failed": d.failed, "d_attempts": d.attempts, "d_seconds": d.handler_seconds,
         "d_start": d.start, "d_now": now}
        for (e, i), d in sorted(deltas.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
    ]
    _APPLY.execute(conn, rows)
