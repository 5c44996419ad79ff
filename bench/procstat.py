"""CPU time and resident memory of a process tree, read from /proc (standard library only).

Used by the harness for `stageline serve` and by each peer script for its own
process tree, so every system is measured the same way.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; it ends at the last ')'.
    return text[text.rindex(")") + 2:].split()


def children_of(pid: int) -> list[int]:
    """Every descendant of pid (a snapshot)."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree(pid: int) -> list[int]:
    return [pid, *children_of(pid)]


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of the processes, including children they have reaped."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:  # utime stime cutime cstime are fields 14-17
            total += sum(int(f) for f in fields[11:15])
    return total / TICKS


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[21]) * PAGE
    return total


def peak_rss_bytes(pid: int) -> int:
    """The kernel's high-water mark (VmHWM) of one process."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Usage:
    cpu_seconds: float
    peak_rss_bytes: int
    wall_seconds: float


class TreeMonitor:
    """Samples a process tree's RSS while a measurement runs; CPU as a difference.

    Peak RSS is the larger of the sampled tree total (every `interval` seconds)
    and the root process's own kernel high-water mark.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._cpu0 = 0.0
        self._t0 = 0.0

    def __enter__(self) -> TreeMonitor:
        self._cpu0 = cpu_seconds(tree(self.pid))
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        pids = tree(self.pid)
        self._peak = max(self._peak, rss_bytes(pids), peak_rss_bytes(self.pid))
        self.usage = Usage(cpu_seconds(pids) - self._cpu0, self._peak,
                           time.perf_counter() - self._t0)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss_bytes(tree(self.pid)))


def machine_busy(seconds: float = 1.0) -> float:
    """The fraction of all CPUs that was busy (any process) over the next `seconds`."""

    def sample() -> tuple[int, int]:
        fields = [int(f) for f in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_until_quiet(threshold: float, patience: float) -> float:
    """Wait (up to `patience` seconds) until the machine is less busy than `threshold`;
    answer the last reading. Other work on the machine skews every number."""
    deadline = time.monotonic() + patience
    busy = machine_busy()
    while busy > threshold and time.monotonic() < deadline:
        busy = machine_busy()
    return busy
