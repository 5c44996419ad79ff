"""The typed client (sync and async) and the CLI commands that use it, against a
real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from stageline import AsyncClient, Client
from stageline.client import ApiError
from stageline.schemas.executions import ExecutionResponse
from stageline.schemas.replay import ReplayPlanResponse
from tests.acceptance.conftest import Server


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stageline.cli", *args, "--url", server.url],
                          capture_output=True, text=True, timeout=60)


def test_client_round_trip(server: Server) -> None:
    with Client(server.url) as api:
        started = api.start("words", {"text": "a b\nc d e"}, tag="client-1")
        assert started.workflow_id == "words"
        done = api.wait("client-1", timeout=30)
        assert done.result == 5 and done.stageline_status == "completed"
        assert api.lineage(done.id).total >= 4
        listed = api.executions(tag="client-1")
        assert [e.id for e in listed.items] == [done.id]
        plan = api.replay(done.id, "storage", "lines", "count", dry_run=True)
        assert isinstance(plan, ReplayPlanResponse) and plan.items == 2
        child = api.replay(done.id, "storage", "lines", "count", tag="client-2")
        assert isinstance(child, ExecutionResponse)
        assert api.wait(child.id, timeout=30).result == 5
        assert [r.id for r in api.replays(done.id)] == [child.id]
        diff = api.diff(done.id, child.id)
        assert all(s.changed == 0 for s in diff.stages)
        with pytest.raises(ApiError) as info:
            api.execution("no-such-tag")
        assert info.value.status == 404 and info.value.error_code == "execution_not_found"
        events = [name for name, _ in api.events(done.id)]
        assert "execution" in events


def test_async_client(server: Server) -> None:
    async def scenario() -> int:
        async with AsyncClient(server.url) as api:
            started = await api.start("words", {"text": "x y"})
            done = await api.wait(started.id, timeout=30)
            return int(done.result)

    assert asyncio.run(scenario()) == 2


def test_cli_commands(server: Server) -> None:
    with Client(server.url) as api:
        first = api.wait(api.start("words", {"text": "one two\nthree"}).id, timeout=30)
    waited = cli(server, "executions", "wait", str(first.id))
    assert waited.returncode == 0 and "completed" in waited.stdout
    lineage = cli(server, "executions", "lineage", str(first.id))
    assert lineage.returncode == 0 and "entries" in lineage.stdout
    dry = cli(server, "replay", str(first.id), "--from-stage", "lines", "--to-route", "count",
              "--dry-run")
    assert dry.returncode == 0 and "2 items would be published" in dry.stdout
    replayed = cli(server, "replay", str(first.id), "--from-stage", "lines", "--to-route",
                   "count", "--wait")
    assert replayed.returncode == 0, replayed.stderr
    diffed = cli(server, "diff", str(first.id), str(first.id))
    assert diffed.returncode == 0 and "lines" in diffed.stdout
    bad = cli(server, "replay", str(first.id), "--from-stage", "nope", "--to-route", "count")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_executions_list_and_show_through_a_server(server: Server) -> None:
    with Client(server.url) as api:
        done = api.wait(api.start("words", {"text": "a"}, tag="listed").id, timeout=30)
    listed = cli(server, "executions", "list")
    assert listed.returncode == 0 and "listed" in listed.stdout and "completed" in listed.stdout
    shown = cli(server, "executions", "show", "listed")
    assert shown.returncode == 0 and str(done.id) in shown.stdout and "split" in shown.stdout


def test_long_poll_answers_when_the_execution_ends(server: Server) -> None:
    with Client(server.url) as api:
        started = api.start("words", {"text": "p q\nr"})
        done = api.execution(started.id, wait_seconds=20)
        assert done.stageline_status == "completed" and done.result == 3
        instant = api.execution(started.id, wait_seconds=0)
        assert instant.stageline_status == "completed"
