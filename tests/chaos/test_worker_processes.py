"""`stageline serve --workers N`: the API with worker processes beside it.

Real processes throughout: work started over HTTP runs in the children (not
in the API's process), a long-poll is answered by a child's commit, a child
killed with SIGKILL is started again and its work is taken over, and no
child outlives a server killed with SIGKILL.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from uuid import UUID

import httpx

from tests.chaos.conftest import Cluster, Server


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:  # field 4 of stat: the parent's pid
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _start(server: Server, payload: dict[str, object]) -> str:
    with server.client() as client:
        answer = client.post("/api/v1/executions", json={"pipeline": "fan", "input": payload})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


def _waited(server: Server, execution_id: str) -> dict[str, object]:
    with httpx.Client(base_url=server.url, timeout=40) as client:
        body: dict[str, object] = client.get(f"/api/v1/executions/{execution_id}",
                                             params={"wait_seconds": 30}).json()
        return body


def test_work_runs_in_the_worker_processes(cluster: Cluster) -> None:
    server = cluster.server("--workers", "2")
    children = cluster.wait(lambda: len(_children(server.proc.pid)) == 2 and
                            _children(server.proc.pid), 30, "two worker processes")

    ids = [_start(server, {"run": f"p{i}", "n": 20}) for i in range(4)]
    bodies = [_waited(server, e) for e in ids]

    assert [b["stageline_status"] for b in bodies] == ["completed"] * 4
    assert [b["result"] for b in bodies] == [
        {"count": 20, "sum": sum(i * i for i in range(20))}] * 4
    workers = {e.meta["worker"] for e in cluster.lineage(UUID(ids[0])) if e.meta and
               "worker" in e.meta}
    assert workers and workers <= {f"{os.uname().nodename}:{pid}" for pid in children}


def test_a_killed_worker_process_is_replaced_and_its_work_taken_over(
        cluster: Cluster) -> None:
    server = cluster.server("--workers", "1")
    (first,) = cluster.wait(lambda: _children(server.proc.pid), 30, "the worker process")
    execution_id = _start(server, {"run": "replace", "n": 6, "hang_after": 2})
    hung = cluster.wait_for_marker("replace-hung")
    assert hung == first

    os.kill(first, 9)
    (second,) = cluster.wait(lambda: [p for p in _children(server.proc.pid) if p != first
                                      and _alive(p)], 30, "a new worker process")
    body = _waited(server, execution_id)  # leases of 2 s: the new child takes over

    assert second != first
    assert body["stageline_status"] == "completed"
    assert body["result"] == {"count": 6, "sum": sum(i * i for i in range(6))}


def test_no_worker_process_outlives_a_killed_server(cluster: Cluster) -> None:
    server = cluster.server("--workers", "2")
    children = cluster.wait(lambda: len(_children(server.proc.pid)) == 2 and
                            _children(server.proc.pid), 30, "two worker processes")

    server.proc.kill()

    deadline = time.monotonic() + 30
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in children), cluster.logs()
