"""Rich renderings of executions, steps and keys."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from rich import box
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from stageline.store.pipelines import Version
from stageline.store.records import ExecutionRecord, StepRunRecord
from stageline.store.tenants import ApiKey

COLORS = {"completed": "green", "failed": "red", "completed_with_errors": "yellow",
          "running": "cyan", "pending": "white", "cancelled": "magenta",
          "in_review": "blue", "skipped": "dim", "dropped": "magenta",
          "interrupted": "yellow", "cancelling": "magenta"}


def status_text(status: str) -> str:
    return f"[{COLORS.get(status, 'white')}]{status}[/]"


def _time(value: object) -> str:
    return "" if value is None else str(value)[:19]


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def executions_table(rows: list[ExecutionRecord], versions: Mapping[UUID, Version]) -> Table:
    table = Table("id", "pipeline", "status", "tag", "created", "completed")
    for r in rows:
        v = versions[r.config_id]
        table.add_row(str(r.id), f"{v.pipeline} v{v.version}", status_text(r.status),
                      r.tag or "", _time(r.created_at), _time(r.completed_at))
    return table


def execution_panel(r: ExecutionRecord, version: Version) -> Panel:
    lines = [
        f"pipeline  {version.pipeline} v{version.version} (config {r.config_id})",
        f"status    {status_text(r.status)}",
        f"created   {_time(r.created_at)}",
        f"completed {_time(r.completed_at)}",
    ]
    if r.result is not None:
        lines.append(f"result    {escape(_short(r.result))}")
    if r.tag:
        lines.append(f"tag       {r.tag}")
    if r.parent_execution_id:
        lines.append(f"parent    {r.parent_execution_id} ({r.replay_source} replay)")
    if r.error:
        lines.append(f"error     [red]{escape(r.error)}[/]")
    return Panel("\n".join(lines), title=f"execution {r.id}", expand=False)


def steps_table(steps: list[StepRunRecord]) -> Table:
    notes = any(s.error_message for s in steps)
    table = Table("#", "step", "stage", "status", "done", "failed", "waiting", "attempts",
                  box=box.SIMPLE_HEAD)
    if notes:
        table.add_column("note")
    for s in steps:
        row = [str(s.step_index), s.step_type, s.output_stage, status_text(s.status),
               str(s.completed), str(s.failed), str(s.outstanding), str(s.attempts)]
        table.add_row(*row, *([s.error_message or ""] if notes else []))
    return table


def keys_table(keys: list[ApiKey]) -> Table:
    table = Table("id", "tenant", "name", "prefix", "created", "revoked")
    for k in keys:
        table.add_row(str(k.id), k.tenant, k.name, k.prefix, _time(k.created_at),
                      _time(k.revoked_at))
    return table
