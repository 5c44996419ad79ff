"""The pipelines the chaos tests run in real `stageline worker` processes.

This file is copied into each test's tmp_path and loaded from there by the
test process (to register the configs and start executions) and by every
worker process (to run the handlers). Handlers coordinate with the test
through marker files in the folder named by CHAOS_MARKS: a handler that
"hangs" creates its marker first, so the test knows when to kill.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from pathlib import Path
from typing import Any

from stageline import Pipeline

HANG_SECONDS = 120.0  # far longer than any test waits: only a kill ends it


def _marks() -> Path:
    return Path(os.environ.get("CHAOS_MARKS", "."))


def first_time(name: str) -> bool:
    """True for exactly one caller across all processes: it creates the marker."""
    try:
        fd = os.open(_marks() / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def hang_once(name: str) -> None:
    """The first attempt anywhere writes marker `name` and hangs; later ones pass."""
    if first_time(name):
        time.sleep(HANG_SECONDS)


# -- slow_once: one step whose first attempt hangs ------------------------

slow_once = Pipeline("slow_once")


@slow_once.step(output="done")
def work(request: dict[str, Any]) -> dict[str, Any]:
    hang_once(f"{request['run']}-work")
    return {"run": request["run"], "done": True}


# -- fan: split into n items, process each, collect them -----------------
# A request is {"run": name, "n": items, "delay": seconds per item,
# "hang_after": count}. With hang_after, the first item that a worker process
# handles after it has handled `count` items hangs (once, across all
# processes): the test kills that worker in mid fan-out.

fan = Pipeline("fan")


@fan.step(output="items", fan_out=True)
def split(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**request, "i": i} for i in range(request["n"])]


_handled = itertools.count(1)  # hang_after items handled by this process (next() is atomic)


@fan.step(output="processed")
def process(item: dict[str, Any]) -> dict[str, Any]:
    if "hang_after" in item and next(_handled) > item["hang_after"]:
        hang_once(f"{item['run']}-hung")
    if item.get("delay"):
        time.sleep(item["delay"])
    return {"i": item["i"], "square": item["i"] ** 2}


@fan.step(output="total", collect=True)
def total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(rows), "sum": sum(r["square"] for r in rows)}


# -- stamp: a handler whose output differs on every attempt --------------
# (a model call, a timestamp): large enough to be offloaded to storage.

stamp = Pipeline("stamp")


@stamp.step(output="stamped")
def stamp_once(request: dict[str, Any]) -> dict[str, Any]:
    return {"attempt_id": uuid.uuid4().hex, "pad": "x" * request.get("size", 4096)}
