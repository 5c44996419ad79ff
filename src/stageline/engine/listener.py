"""Waking a worker from PostgreSQL's LISTEN/NOTIFY, with polling as fallback."""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy.engine import make_url

from stageline.engine.waker import Waker
from stageline.store.dialect import WORK_CHANNEL

log = logging.getLogger("stageline.listener")


class WorkListener:
    """A thread holding one connection that LISTENs for new work.

    Every notification wakes the worker's Waker. If the connection drops
    the thread reconnects; meanwhile the worker's poll interval still finds
    work, only later.
    """

    def __init__(self, sqlalchemy_url: str, waker: Waker) -> None:
        self.dsn = _libpq_dsn(sqlalchemy_url)
        self.waker = waker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stageline-listen", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._listen()
                backoff = 0.1
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning("LISTEN connection lost (%s); polling until it is back", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _listen(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {WORK_CHANNEL}")
            self.connected.set()
            self.waker.notify()  # work may have arrived while we were away
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=1.0):
                    self.waker.notify()


def _libpq_dsn(sqlalchemy_url: str) -> str:
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
