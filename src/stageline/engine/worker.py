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
from typing import Any
from uuid import UUID

from stageline.adapters.registry import Handler
from stageline.domain.config import PipelineConfig
from stageline.engine.runner import BoundAdapter, bind, run_message
from stageline.engine.waker import Waker
from stageline.storage.blobs import BlobStore
from stageline.store import pipelines, queue
from stageline.store.db import Database, DatabaseUnavailable
from stageline.store.items import offload
from stageline.store.queue import Claimed, CommitReport, Outcome

log = logging.getLogger("stageline.worker")
BATCH_SECONDS = 0.25  # the work one batch aims to hold


@dataclass
class WorkerSettings:
    concurrency: int = 4
    batch_size: int = 256  # the most messages one batch takes; see Worker._limit
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
        self._listener: Any = None  # a WorkListener, on PostgreSQL
        self._pool = ThreadPoolExecutor(self.settings.concurrency,
                                        thread_name_prefix="stageline-handler")
        self._beat = _Heartbeat(self)
        self._in_hand: list[Claimed] = []  # leased by the last commit, not yet run
        self._expiry_checked = -1e9
        self._per_message: float | None = None  # seconds, moving average
        self.processed = 0
        self.batches = 0

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        if not self.db.is_sqlite:
            from stageline.engine.listener import WorkListener  # psycopg: PostgreSQL only

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
        self._beat.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run_forever(self) -> None:
        idle = self.settings.poll_interval
        while not self._stop.is_set():
            try:
                done = self._round(carry=True)
            except DatabaseUnavailable as exc:
                log.warning("database unavailable, retrying: %s", exc)
                done = 0
            except Exception:
                log.exception("worker loop error")
                done = 0
            if not done:
                self.waker.wait(idle)
        self._finish_in_hand()

    def run_until_idle(self, timeout: float = 60.0) -> None:
        """Process until no message is ready (tests and `stageline run`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._round(carry=True):
                return
        self._finish_in_hand()
        raise TimeoutError("work did not drain in time")

    # -- one round -------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch, run it, commit it; nothing stays leased afterwards."""
        return self._round(carry=False)

    def _round(self, carry: bool) -> int:
        """Run the batch in hand (or a newly claimed one) and commit it. With
        `carry`, the commit also leases the next batch, which stays in hand."""
        claimed, self._in_hand = self._in_hand or self._claim(), []
        if not claimed:
            return 0
        self._beat.hold(claimed)
        began = time.perf_counter()
        try:
            outcomes = self._run_all(claimed)
        finally:
            self._beat.release()
        self._learn(time.perf_counter() - began, len(claimed))
        self._commit(outcomes, carry)
        self.processed += len(outcomes)
        self.batches += 1
        return len(outcomes)

    def _learn(self, seconds: float, count: int) -> None:
        """Follow how long a message takes here, for `_limit`: slower at once,
        quicker by a moving average, so a slow step is not taken in a batch
        sized for a quick one."""
        per_message = seconds / count
        old = self._per_message
        self._per_message = per_message if old is None or per_message > old else (
            0.8 * old + 0.2 * per_message)

    @property
    def _limit(self) -> int:
        """How many messages to take at once: as many as run in about a quarter of
        a second, between `concurrency` and `batch_size`. Quick steps go in large
        batches (fewer transactions); slow ones in small ones, so that other
        workers get a share instead of waiting behind one worker's backlog, and
        their items show up as they are done. Until a batch has been timed, one
        message per handler thread."""
        s = self.settings
        least = min(s.concurrency, s.batch_size)
        if self._per_message is None:
            return least  # nothing measured yet: one message per handler thread
        if self._per_message <= 0:
            return s.batch_size
        return max(least, min(s.batch_size, int(BATCH_SECONDS / self._per_message)))

    def _finish_in_hand(self) -> None:
        """Messages leased by the last commit are run and committed, not abandoned
        to wait for their lease to expire."""
        while self._in_hand:
            try:
                self._round(carry=False)
            except Exception:
                log.exception("could not finish the batch in hand; its leases will expire")
                self._in_hand = []

    def _run_all(self, claimed: list[Claimed]) -> list[Outcome]:
        """Run a batch on the handler threads, in one contiguous slice per thread:
        a few futures per batch instead of one per message."""
        if len(claimed) == 1:  # nothing to overlap with: skip the thread hop
            return [self._run(claimed[0])]
        slices = min(self.settings.concurrency, len(claimed))
        size = -(-len(claimed) // slices)
        parts = [claimed[i:i + size] for i in range(0, len(claimed), size)]
        outcomes: list[Outcome] = []
        for part in self._pool.map(lambda part: [self._run(c) for c in part], parts):
            outcomes += part
        return outcomes

    def _claim(self) -> list[Claimed]:
        with self.db.write() as conn:
            return queue.claim(conn, self.settings.name, self._limit,
                               self.settings.lease_seconds, self.settings.queues,
                               lambda cid: self._config(cid, conn),
                               expired=self._expiry_due())

    def _expiry_due(self) -> bool:
        """Whether this claim also looks for expired leases. Leases last many
        seconds, so looking once a second loses nothing and saves a query on
        every other claim."""
        now = time.monotonic()
        if now - self._expiry_checked < 1.0:
            return False
        self._expiry_checked = now
        return True

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

    def _commit(self, outcomes: list[Outcome], carry: bool = False) -> None:
        """Commit, retrying while the database is away and the leases still hold."""
        deadline = time.monotonic() + self.settings.lease_seconds
        delay = 0.05
        s = self.settings
        # Work started since the last look (a notification, or expired leases to
        # take over) is worth a query even when this commit carries chains on.
        expiry = self._expiry_due()
        plan = queue.Carry(s.name, s.queues, self._limit, s.lease_seconds, expiry,
                           top_up=self.waker.take() or expiry) if carry else None
        while True:
            try:
                with self.db.write() as conn:
                    report = queue.commit(conn, outcomes, lambda cid: self._config(cid, conn),
                                          carry=plan)
                break
            except DatabaseUnavailable:
                if time.monotonic() + delay > deadline:
                    log.error("gave up committing %d outcomes: leases expire", len(outcomes))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        self._in_hand = report.next_batch
        if report.fenced:
            log.warning("lease lost for %d messages; their results were discarded",
                        len(report.fenced))
        if report.new_messages > len(report.next_batch) or report.finished:
            self.waker.notify()
        if self.on_commit is not None:
            self.on_commit(report)


class _Heartbeat:
    """One thread per worker that extends the leases of the batch being run."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._lock = threading.Lock()
        self._held: list[Claimed] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, claimed: list[Claimed]) -> None:
        with self._lock:
            self._held = claimed
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, daemon=True,
                                                name="stageline-heartbeat")
                self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._held = []

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        lease = self.worker.settings.lease_seconds
        while not self._stop.wait(lease / 3):
            with self._lock:
                held = list(self._held)
            by_token: dict[UUID, list[UUID]] = {}
            for c in held:
                by_token.setdefault(c.lease_token, []).append(c.id)
            for token, ids in by_token.items():
                try:
                    with self.worker.db.write() as conn:
                        queue.heartbeat(conn, ids, token, lease)
                except Exception as exc:
                    log.warning("heartbeat failed: %s", exc)
