"""Starting executions that arrive together in one transaction (group commit).

Every start writes a handful of rows; its transaction's fixed cost (taking
SQLite's one writer, or PostgreSQL's commit and its fsync) is larger than
the rows. Concurrent starts in one process therefore queue here: whichever
thread gets to the database first inserts every start waiting at that moment
in one transaction, and the others find theirs done. A start is answered
only after the transaction holding it committed, as before.

If the shared transaction fails (a tag already used, two starts with one
idempotency key, the database away), each start of that group is tried again
in a transaction of its own, so one bad request fails alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from stageline.store.db import Database
from stageline.store.executions import PreparedExecution, insert
from stageline.store.records import ExecutionRecord


@dataclass
class _Slot:
    prepared: PreparedExecution
    done: bool = False
    result: tuple[ExecutionRecord, bool] | None = None
    error: BaseException | None = None


class StartQueue:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[_Slot] = []
        self._pending_lock = threading.Lock()
        self._combiner = threading.Lock()  # one group in flight per process

    def start(self, prepared: PreparedExecution) -> tuple[ExecutionRecord, bool]:
        """Insert a prepared execution; (record, created) as `executions.insert`."""
        slot = _Slot(prepared)
        with self._pending_lock:
            self._pending.append(slot)
        with self._combiner:
            if not slot.done:
                with self._pending_lock:
                    group, self._pending = self._pending, []
                self._insert(group)
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def _insert(self, group: list[_Slot]) -> None:
        if len(group) > 1:
            try:
                with self.db.write() as conn:
                    results = [insert(conn, s.prepared) for s in group]
            except Exception:
                pass  # each start is tried again alone, below
            else:
                for s, result in zip(group, results, strict=True):
                    s.result, s.done = result, True
                return
        for s in group:
            try:
                with self.db.write() as conn:
                    s.result = insert(conn, s.prepared)
            except BaseException as exc:  # the request's own error, raised in its thread
                s.error = exc
            s.done = True
