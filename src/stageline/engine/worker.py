"""The worker loop: claim a batch, run it, commit it, repeat."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from uuid import UUID

from stageline.adapters.registry import Handler
from stageline.domain.config import PipelineConfig
from stageline.engine.listener import WorkListener
from stageline.engine.runner import BoundAdapter, bind, run_message
from stageline.engine.waker import Waker
from stageline.storage.blobs import BlobStore
from stageline.store import pipelines, queue
from stageline.store.db import Database, DatabaseUnavailable
from stageline.store.items import offload
from stageline.store.queue import Claimed, CommitReport, Outcome

log = logging.getLogger("stageline.worker")


@dataclass
class WorkerSettings:
    concurrency: int = 4
    batch_size: int = 64
    lease_seconds: float = 30.0
    poll_interval: float = 0.5
    queues: list[str] = field(default_factory=lambda: ["default"])
    inline_limit: int = 64 * 1024
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


class Worker:
    """Runs messages of any execution whose adapters it can resolve."""

    def __init__(self, db: Database, blobs: BlobStore, handlers: Mapping[str, Handler],
                 settings: WorkerSettings | None = None, waker: Waker | None = None,
                 on_commit: Callable[[CommitReport], None] | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.handlers = dict(handlers)
        self.settings = settings or WorkerSettings()
        self.waker = waker or Waker()
        self.on_commit = on_commit
        self._configs: dict[UUID, PipelineConfig] = {}
        self._chains: dict[tuple[UUID, int], list[BoundAdapter]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: WorkListener | None = None
        self._pool = ThreadPoolExecutor(self.settings.concurrency,
                                        thread_name_prefix="stageline-handler")
        self.processed = 0

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        if not self.db.is_sqlite:
            self._listener = WorkListener(self.db.url, self.waker)
            self._listener.start()
        self._thread = threading.Thread(target=self.run_forever, name="stageline-worker",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish and commit the batch in hand, then stop."""
        self._stop.set()
        self.waker.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._listener is not None:
            self._listener.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run_forever(self) -> None:
        idle = self.settings.poll_interval
        while not self._stop.is_set():
            try:
                done = self.run_once()
            except DatabaseUnavailable as exc:
                log.warning("database unavailable, retrying: %s", exc)
                done = 0
            except Exception:
                log.exception("worker loop error")
                done = 0
            if not done:
                self.waker.wait(idle)

    def run_until_idle(self, timeout: float = 60.0) -> None:
        """Process until no message is ready (tests and `stageline run`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.run_once():
                return
        raise TimeoutError("work did not drain in time")

    # -- one round -------------------------------------------------------

    def run_once(self) -> int:
        claimed = self._claim()
        if not claimed:
            return 0
        with _Heartbeat(self, claimed):
            outcomes = list(self._pool.map(self._run, claimed))
        self._commit(outcomes)
        self.processed += len(outcomes)
        return len(outcomes)

    def _claim(self) -> list[Claimed]:
        with self.db.write() as conn:
            return queue.claim(conn, self.settings.name, self.settings.batch_size,
                               self.settings.lease_seconds, self.settings.queues,
                               lambda cid: self._config(cid, conn))

    def _config(self, config_id: UUID, conn: object | None = None) -> PipelineConfig:
        config = self._configs.get(config_id)
        if config is None:
            if conn is None:
                with self.db.read() as c:
                    config = pipelines.config_of(c, config_id)
            else:
                config = pipelines.config_of(conn, config_id)  # type: ignore[arg-type]
            self._configs[config_id] = config
        return config

    def _chain(self, claimed: Claimed) -> list[BoundAdapter]:
        key = (claimed.config_id, claimed.step_index)
        chain = self._chains.get(key)
        if chain is None:
            chain = bind(self._config(claimed.config_id).steps[claimed.step_index],
                         self.handlers)
            self._chains[key] = chain
        return chain

    def _run(self, claimed: Claimed) -> Outcome:
        step = self._config(claimed.config_id).steps[claimed.step_index]
        outcome = run_message(claimed, step, self._chain(claimed), self.blobs)
        if outcome.outputs:
            outcome.paths = offload(claimed.execution_id, outcome.outputs, self.blobs,
                                    self.settings.inline_limit)
        return outcome

    def _commit(self, outcomes: list[Outcome]) -> None:
        """Commit, retrying while the database is away and the leases still hold."""
        deadline = time.monotonic() + self.settings.lease_seconds
        delay = 0.05
        while True:
            try:
                with self.db.write() as conn:
                    report = queue.commit(conn, outcomes, self._config)
                break
            except DatabaseUnavailable:
                if time.monotonic() + delay > deadline:
                    log.error("gave up committing %d outcomes: leases expire", len(outcomes))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        if report.fenced:
            log.warning("lease lost for %d messages; their results were discarded",
                        len(report.fenced))
        if report.new_messages or report.finished:
            self.waker.notify()
        if self.on_commit is not None:
            self.on_commit(report)


class _Heartbeat:
    """Extends the batch's leases while its handlers run."""

    def __init__(self, worker: Worker, claimed: list[Claimed]) -> None:
        self.worker = worker
        self.ids = [c.id for c in claimed]
        self.token = claimed[0].lease_token
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name="stageline-heartbeat")

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        lease = self.worker.settings.lease_seconds
        while not self._done.wait(lease / 3):
            try:
                with self.worker.db.write() as conn:
                    queue.heartbeat(conn, self.ids, self.token, lease)
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
