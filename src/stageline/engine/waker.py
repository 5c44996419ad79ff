"""Waking idle workers as soon as there is new work."""

from __future__ import annotations

import threading


class Waker:
    """In-process wake-up: the API and the worker of one process share it.

    Polling stays the fallback, so a missed wake-up costs one poll interval.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def notify(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(timeout)
        self._event.clear()
        return woke
