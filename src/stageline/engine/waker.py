"""Waking idle workers as soon as there is new work."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Waker:
    """In-process wake-up: the API and the worker of one process share it.

    Polling stays the fallback, so a missed wake-up costs one poll interval.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._forward: list[Callable[[], None]] = []

    def forward_to(self, notify: Callable[[], None]) -> None:
        """Also wake someone else on every notify (worker processes of a server)."""
        self._forward.append(notify)

    def notify(self) -> None:
        self._event.set()
        for notify in self._forward:
            notify()

    def take(self) -> bool:
        """Whether someone notified since the last wait or take, clearing it."""
        woke = self._event.is_set()
        if woke:
            self._event.clear()
        return woke

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(timeout)
        self._event.clear()
        return woke
