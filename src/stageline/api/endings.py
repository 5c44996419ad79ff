"""Telling long-polling requests that an execution moved on.

The embedded worker announces the executions whose status changed in each
commit; a request waiting on one of them wakes at once. Workers in other
processes announce nothing here, so waiters also re-read every half second.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from uuid import UUID

RECHECK_SECONDS = 0.5


class Endings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[UUID, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def register(self, execution_id: UUID) -> asyncio.Event:
        """An event set when the execution's status changes (call from the event loop)."""
        event = asyncio.Event()
        with self._lock:
            self._waiters.setdefault(execution_id, []).append(
                (asyncio.get_running_loop(), event))
        return event

    def unregister(self, execution_id: UUID, event: asyncio.Event) -> None:
        with self._lock:
            waiting = self._waiters.get(execution_id, [])
            waiting[:] = [(loop, e) for loop, e in waiting if e is not event]
            if not waiting:
                self._waiters.pop(execution_id, None)

    def announce(self, execution_ids: Iterable[UUID]) -> None:
        """Wake the waiters of these executions (from any thread)."""
        with self._lock:
            woken = [w for i in execution_ids for w in self._waiters.pop(i, [])]
        for loop, event in woken:
            loop.call_soon_threadsafe(event.set)
