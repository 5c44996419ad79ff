"""Commands that talk to a running server through `stageline.Client`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stageline.cli import render
from stageline.cli.errors import friendly
from stageline.client import Client
from stageline.schemas.replay import ReplayPlanResponse

UrlOpt = Annotated[str, typer.Option("--url", envvar="STAGELINE_URL",
                                     help="Server URL [env STAGELINE_URL]")]
KeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="STAGELINE_API_KEY",
                                            help="API key [env STAGELINE_API_KEY]")]
OptionalUrlOpt = Annotated[str | None, typer.Option(
    "--url", envvar="STAGELINE_URL", help="Ask this server [env STAGELINE_URL]")]
DEFAULT_URL = "http://127.0.0.1:8000"
out = Console()


def client(url: str, api_key: str | None) -> Client:
    return Client(url, api_key=api_key, retries=2)


def replay(
    execution_id: str,
    from_stage: Annotated[str, typer.Option("--from-stage")],
    to_route: Annotated[str, typer.Option("--to-route")],
    source: Annotated[str, typer.Option("--source",
                                        help="storage, lineage or manual")] = "storage",
    from_path: Annotated[str | None, typer.Option("--from-path")] = None,
    config_id: Annotated[str | None, typer.Option("--config-id")] = None,
    tag: Annotated[str | None, typer.Option()] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the replay to end")] = False,
    url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None,
) -> None:
    """Replay an execution from a stage into a route (seed 002)."""
    with client(url, api_key) as api:
        answer = api.replay(execution_id, source, from_stage, to_route, from_path=from_path,
                            config_id=config_id, tag=tag, dry_run=dry_run or None)
        if isinstance(answer, ReplayPlanResponse):
            out.print(_plan_table(answer))
            out.print(f"{answer.items} items would be published into {answer.to_route}")
            for finding in answer.findings:
                out.print(f"{finding.severity} {finding.code}: {finding.message}",
                          markup=False)
            if not answer.fits:
                raise typer.Exit(1)
            return
        out.print(f"replay {answer.id} of {execution_id}: {answer.status}")
        if wait:
            done = api.wait(answer.id)
            out.print(f"{done.id}: {done.stageline_status}")
            raise typer.Exit(0 if done.stageline_status == "completed" else 1)


def _plan_table(plan: ReplayPlanResponse) -> Table:
    table = Table("#", "step", "action", "items")
    for step in plan.steps:
        table.add_row(str(step.step_index), step.step_type, step.action,
                      "" if step.items is None else str(step.items))
    return table


def diff(a: str, b: str, stage: Annotated[str | None, typer.Option()] = None,
         key: Annotated[str | None, typer.Option(help="With --stage: one item's diff")] = None,
         url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """What changed from execution A to execution B, stage by stage."""
    with client(url, api_key) as api:
        result = api.diff(a, b, stage=stage, key=key)
    table = Table("stage", "added", "removed", "changed", "unchanged")
    for s in result.stages:
        table.add_row(s.stage, str(s.added), str(s.removed), str(s.changed), str(s.unchanged))
    out.print(table)
    if result.item is not None:
        out.print(result.item.unified or "(no difference)", highlight=False, markup=False)


def wait(execution_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None,
         timeout: Annotated[float, typer.Option()] = 600.0) -> None:
    """Wait until an execution ends; exit 1 unless it completed."""
    with client(url, api_key) as api:
        done = api.wait(execution_id, timeout=timeout)
    out.print(f"{done.id}: {done.stageline_status}")
    raise typer.Exit(0 if done.stageline_status == "completed" else 1)


def lineage(execution_id: str, limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
            url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """An execution's lineage entries (seed 000)."""
    with client(url, api_key) as api:
        page = api.lineage(execution_id, limit=limit)
    table = Table("started", "route", "stage", "status", "ms", "correlation", "parent")
    for e in page.entries:
        table.add_row(e.started_at.isoformat()[11:23], e.route_id or "", e.stage_name,
                      e.stage_status, f"{e.duration_ms or 0:.1f}", e.correlation_id[-12:],
                      (e.parent_correlation_id or "")[-12:])
    out.print(table)
    out.print(f"{len(page.entries)} of {page.total} entries")


def results(execution_id: str, step_index: int,
            limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
            url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """A step's output items (partial results while it runs), as JSON lines."""
    with client(url, api_key) as api:
        page: Any = api.get(f"/api/v1/pipelines/executions/{execution_id}/steps/"
                            f"{step_index}/result", limit=limit)
    for item in page.get("items", []):
        out.print(json.dumps(item), highlight=False, markup=False)


def list_executions(url: str, api_key: str | None, status: str | None, limit: int) -> None:
    with client(url, api_key) as api:
        page = api.executions(status=status, limit=limit)
    table = Table("id", "pipeline", "status", "tag", "created", "completed")
    for e in page.items:
        table.add_row(e.id, f"{e.pipeline} v{e.pipeline_version}",
                      render.status_text(e.stageline_status), e.tag or "",
                      e.created_at[:19], (e.completed_at or "")[:19])
    out.print(table)


def show_execution(url: str, api_key: str | None, execution_id: str) -> None:
    with client(url, api_key) as api:
        e = api.execution(execution_id)
    out.print(f"execution {e.id}: {e.pipeline} v{e.pipeline_version} "
              f"{render.status_text(e.stageline_status)}")
    if e.error:
        out.print(f"error: {e.error}", markup=False)
    table = Table("#", "step", "status", "done", "failed", "waiting", "attempts")
    for s in e.steps:
        table.add_row(str(s.step_index), s.step_type, render.status_text(s.status),
                      str(s.completed), str(s.failed), str(s.outstanding), str(s.attempts))
    out.print(table)


def register(app: typer.Typer, executions_app: typer.Typer) -> None:
    app.command()(friendly(replay))
    app.command()(friendly(diff))
    executions_app.command()(friendly(wait))
    executions_app.command()(friendly(lineage))
    executions_app.command()(friendly(results))
