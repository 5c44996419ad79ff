"""Worker processes beside the API: `stageline serve --workers N`.

The API and a worker in one process share one interpreter lock; worker
processes give each its own core. Each is a `stageline worker` child on the
same database and storage, tied to the server by its standard streams:

- the server writes a line `w` to a child's stdin when it has started work,
  so an idle child claims at once instead of at its next poll;
- a child writes `f <execution id> ...` to its stdout after each commit that
  changed executions' statuses, so long-polling requests answer at once;
- end of stdin tells a child to stop: it finishes and commits the batch in
  hand, then exits. A server that dies closes the pipe the same way, so no
  child outlives it.

A child that exits on its own is started again (a few times a minute at most).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO
from uuid import UUID

from stageline.settings import Settings

log = logging.getLogger("stageline.processes")
RESTARTS_PER_MINUTE = 5
WAKE = b"w\n"
FINISHED = "f"


def child_env(settings: Settings) -> dict[str, str]:
    """The server's settings, as the environment a child's Settings reads."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        env[f"STAGELINE_{name.upper()}"] = str(value)
    return env


class WorkerProcesses:
    def __init__(self, settings: Settings, target: str, count: int) -> None:
        self.settings = settings
        self.target = target
        self.count = count
        # told the executions whose status a child's commit changed (the API's
        # long-polls listen here)
        self.on_finished: Callable[[list[UUID]], None] = lambda ids: None
        self._children: list[_Child] = []
        self._stopping = False

    def start(self) -> None:
        self._children = [_Child(self, i) for i in range(self.count)]
        for child in self._children:
            child.spawn()

    def notify(self) -> None:
        """New work: wake every child."""
        for child in self._children:
            child.send(WAKE)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask every child to finish its batch and exit; kill those that do not."""
        self._stopping = True
        for child in self._children:
            child.close_input()
        deadline = time.monotonic() + timeout
        for child in self._children:
            child.wait(max(0.1, deadline - time.monotonic()))

    @property
    def stopping(self) -> bool:
        return self._stopping


class _Child:
    def __init__(self, group: WorkerProcesses, index: int) -> None:
        self.group = group
        self.index = index
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # API threads write wake-ups concurrently
        self._starts: list[float] = []

    def spawn(self) -> None:
        self._starts = [t for t in self._starts if t > time.monotonic() - 60] + [
            time.monotonic()]
        command = [sys.executable, "-m", "stageline.cli", "worker", self.group.target,
                   "--parent-pipe"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=child_env(self.group.settings))
        threading.Thread(target=self._read, args=(self.process,), daemon=True,
                         name=f"stageline-child-{self.index}").start()
        log.info("worker process %d started (pid %d)", self.index, self.process.pid)

    def send(self, line: bytes) -> None:
        process = self.process
        if process is None or process.stdin is None:
            return
        with self._lock:
            try:
                process.stdin.write(line)
                process.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # exiting: its reader restarts it, or the server is stopping

    def close_input(self) -> None:
        process = self.process
        if process is not None and process.stdin is not None:
            with self._lock, contextlib.suppress(BrokenPipeError, OSError):
                process.stdin.close()

    def wait(self, timeout: float) -> None:
        process = self.process
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("worker process %d did not stop in time; killing it", self.index)
            process.kill()
            process.wait()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for ids in finished_lines(process.stdout):
            self.group.on_finished(ids)
        code = process.wait()
        if self.group.stopping:
            return
        if len(self._starts) >= RESTARTS_PER_MINUTE:
            log.error("worker process %d exited with %s and keeps failing; not restarting",
                      self.index, code)
            return
        log.error("worker process %d exited with %s; starting it again", self.index, code)
        self.spawn()


def finished_lines(stream: IO[bytes]) -> Iterable[list[UUID]]:
    """The execution ids of each `f ...` line a child writes."""
    for raw in stream:
        parts = raw.decode("ascii", "replace").split()
        if parts and parts[0] == FINISHED:
            try:
                yield [UUID(p) for p in parts[1:]]
            except ValueError:
                log.warning("unreadable line from a worker process: %r", raw[:200])


class ParentPipe:
    """The child's side: wake-ups and the stop come in on stdin, statuses go out
    on stdout."""

    def __init__(self, wake: Callable[[], None], stop: Callable[[], None]) -> None:
        self._wake = wake
        self._stop = stop
        self._out = sys.stdout.buffer
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._listen, daemon=True,
                                        name="stageline-parent-pipe")

    def start(self) -> None:
        self._thread.start()

    def finished(self, execution_ids: Iterable[UUID]) -> None:
        line = " ".join([FINISHED, *(str(i) for i in execution_ids)]) + "\n"
        with self._lock:
            try:
                self._out.write(line.encode("ascii"))
                self._out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the server is gone; stdin's end stops us

    def _listen(self) -> None:
        for line in sys.stdin.buffer:
            if line == WAKE:
                self._wake()
        self._stop()
