"""The `stageline` command."""

from __future__ import annotations

import gc
import ipaddress
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from stageline.cli import remote, render
from stageline.cli.errors import err, friendly
from stageline.runtime import Runtime
from stageline.settings import Settings
from stageline.store.pipelines import UnknownPipeline

app = typer.Typer(help="Stageline: durable pipeline executions.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
executions_app = typer.Typer(help="Look at executions.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(executions_app, name="executions")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")

out = Console()

DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL [env STAGELINE_DB]")]
StorageOpt = Annotated[str | None, typer.Option("--storage",
                                                help="Stage storage URL [env STAGELINE_STORAGE]")]
ConcurrencyOpt = Annotated[int | None, typer.Option("--concurrency", "-c",
                                                    help="Handler threads")]
FileArg = Annotated[str, typer.Argument(help="Python file, module:attribute, or YAML config")]
DurabilityOpt = Annotated[str | None, typer.Option(
    "--durability", help="normal, or strict: fsync every SQLite commit [env STAGELINE_DURABILITY]")]


# A worker's threads (and an embedded server's API) share one interpreter lock.
# Each database call gives it up; getting it back waits out the running
# thread's time slice, 5 ms by default, on every statement.
SWITCH_INTERVAL = 0.001


def _settings(**given: Any) -> Settings:
    return Settings(**{k: v for k, v in given.items() if v is not None})


def _open(settings: Settings, *, migrate: bool) -> Runtime:
    return Runtime.open(settings, migrate_schema=migrate)


def _embedded(settings: Settings) -> bool:
    return settings.db.startswith("sqlite") or "://" not in settings.db


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
@friendly
def serve(
    file: FileArg, db: DbOpt = None, storage: StorageOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    concurrency: ConcurrencyOpt = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run the API only")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", min=0, max=64,
        help="Worker processes beside the API (0: one worker inside the API's process)",
    )] = 0,
    durability: DurabilityOpt = None,
) -> None:
    """Run the API (and a worker) for the pipelines in FILE."""
    import uvicorn

    from stageline.api.app import create_app
    from stageline.engine.processes import WorkerProcesses
    from stageline.store import tenants

    settings = _settings(db=db, storage=storage, host=host, port=port, concurrency=concurrency,
                         durability=durability)
    _setup_logging(settings.log_level)
    runtime = _open(settings, migrate=_embedded(settings))
    runtime.load_pipelines(file)
    with runtime.db.read() as conn:
        has_keys = tenants.any_keys(conn)
    loopback = _is_loopback(settings.host)
    if not has_keys and not loopback:
        raise ValueError(f"refusing to serve on {settings.host} without API keys: create one "
                         "with `stageline keys create` or bind to 127.0.0.1")
    if not has_keys:
        err.print(f"[yellow]no API keys: the API on {settings.host} accepts requests without "
                  "authentication (loopback only)[/yellow]")
    processes = None
    worker = None
    if not no_worker and workers:
        processes = WorkerProcesses(settings, file, workers)
        runtime.waker.forward_to(processes.notify)
    elif not no_worker:
        worker = runtime.worker()
        sys.setswitchinterval(SWITCH_INTERVAL)
    api = create_app(runtime, worker=worker, processes=processes, open_access=loopback,
                     embedded=_embedded(settings) and not no_worker)
    err.print(f"Stageline on http://{settings.host}:{settings.port}  "
              f"db={runtime.db.dialect} storage={settings.storage} "
              f"pipelines={', '.join(sorted(runtime.versions))}")
    # What start-up loaded (some 140,000 objects) lives as long as the process:
    # kept out of the collector's full passes, which otherwise walk all of it
    # (50-80 ms of CPU) every few large responses, such as lineage pages.
    # Start-up leaves next to no cyclic garbage to collect first.
    gc.freeze()
    uvicorn.run(api, host=settings.host, port=settings.port, log_level="warning")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
@friendly
def worker(file: FileArg, db: DbOpt = None, storage: StorageOpt = None,
           concurrency: ConcurrencyOpt = None,
           queues: Annotated[str | None, typer.Option(help="Comma-separated queues")] = None,
           durability: DurabilityOpt = None,
           parent_pipe: Annotated[bool, typer.Option(
               "--parent-pipe", hidden=True,
               help="Run as a worker process of `serve --workers` (stdin/stdout)")] = False,
           ) -> None:
    """Run a worker alone: it claims work from the database until stopped."""
    import signal
    import threading

    from stageline.engine.processes import ParentPipe

    settings = _settings(db=db, storage=storage, concurrency=concurrency, queues=queues,
                         durability=durability)
    _setup_logging(settings.log_level)
    runtime = _open(settings, migrate=False)
    runtime.load_pipelines(file)
    work = runtime.worker()
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.freeze()  # as serve does: start-up's objects stay out of full collections
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if parent_pipe:
        # Ctrl-C in the server's terminal reaches us too: the server decides.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pipe = ParentPipe(runtime.waker.notify, stop.set)
        work.on_commit = lambda report: pipe.finished(report.finished) if report.finished \
            else None
        pipe.start()
    err.print(f"worker {work.settings.name} on {runtime.db.dialect}, queues "
              f"{','.join(work.settings.queues)}")
    work.start()
    stop.wait()
    work.stop()
    err.print(f"worker stopped after {work.processed} messages in {work.batches} batches")


@app.command()
@friendly
def run(
    file: FileArg,
    input: Annotated[str, typer.Option("--input", "-i",
                                       help="JSON, or @path to a JSON file")] = "null",
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p")] = None,
    tag: Annotated[str | None, typer.Option()] = None,
    db: DbOpt = None, storage: StorageOpt = None, concurrency: ConcurrencyOpt = None,
    durability: DurabilityOpt = None,
) -> None:
    """Run one execution to its end with live progress; exit 1 if it failed."""
    from stageline.cli.run import run_to_end

    payload = _read_input(input)
    settings = _settings(db=db, storage=storage, concurrency=concurrency,
                         durability=durability)
    runtime = _open(settings, migrate=_embedded(settings))
    loaded = runtime.load_pipelines(file)
    names = [p.name for p in loaded]
    name = pipeline or names[0]
    if pipeline is None and len(names) > 1:
        raise ValueError(f"{file} defines several pipelines ({', '.join(names)}): "
                         "choose one with --pipeline")
    if name not in names:
        raise UnknownPipeline(f"unknown pipeline {name!r}; {file} defines {', '.join(names)}")
    ok = run_to_end(runtime, name, payload, tag, out)
    raise typer.Exit(0 if ok else 1)


def _read_input(text: str) -> Any:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read input file {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"input is not valid JSON: {exc}") from exc


@executions_app.command("list")
@friendly
def executions_list(db: DbOpt = None,
                    status: Annotated[str | None, typer.Option()] = None,
                    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
                    url: remote.OptionalUrlOpt = None, api_key: remote.KeyOpt = None) -> None:
    """The newest executions: from a server with --url, else from the database."""
    if url:
        remote.list_executions(url, api_key, status, limit)
        return
    from stageline.store import executions
    from stageline.store.executions import ExecutionFilter

    runtime = _open(_settings(db=db), migrate=False)
    assert runtime.default_tenant is not None
    with runtime.db.read() as conn:
        rows = executions.list_page(conn, runtime.default_tenant,
                                    ExecutionFilter(status=[status] if status else None),
                                    limit, None)
        names = {r.config_id: runtime.version(conn, runtime.default_tenant, r.config_id)
                 for r in rows}
    out.print(render.executions_table(rows, names))


@executions_app.command("show")
@friendly
def executions_show(execution_id: str, db: DbOpt = None, url: remote.OptionalUrlOpt = None,
                    api_key: remote.KeyOpt = None) -> None:
    """One execution (id or tag) with its steps: from a server with --url, else the database."""
    if url:
        remote.show_execution(url, api_key, execution_id)
        return
    from stageline.store import executions

    runtime = _open(_settings(db=db), migrate=False)
    assert runtime.default_tenant is not None
    with runtime.db.read() as conn:
        record = executions.resolve(conn, runtime.default_tenant, execution_id)
        version = runtime.version(conn, runtime.default_tenant, record.config_id)
        steps = executions.steps_of(conn, record.id)
    out.print(render.execution_panel(record, version))
    out.print(render.steps_table(steps))


@db_app.command("upgrade")
@friendly
def db_upgrade(db: DbOpt = None) -> None:
    """Migrate the database schema to this version of Stageline."""
    from stageline.store import migrate
    from stageline.store.db import Database

    database = Database(_settings(db=db).db)
    migrate.upgrade(database)
    out.print(f"schema at revision {migrate.current_revision(database)}")


@keys_app.command("create")
@friendly
def keys_create(name: Annotated[str, typer.Option()] = "default",
                tenant: Annotated[str, typer.Option()] = "default", db: DbOpt = None) -> None:
    """Create an API key; the secret is printed once."""
    from stageline.store import tenants

    runtime = _open(_settings(db=db), migrate=_embedded(_settings(db=db)))
    with runtime.db.write() as conn:
        secret, key = tenants.create_key(conn, tenant, name)
    err.print(f"key {key.id} for tenant {tenant!r} (shown once):")
    out.print(secret, highlight=False)


@keys_app.command("list")
@friendly
def keys_list(db: DbOpt = None) -> None:
    """API keys (never their secrets)."""
    from stageline.store import tenants

    runtime = _open(_settings(db=db), migrate=False)
    with runtime.db.read() as conn:
        keys = tenants.list_keys(conn)
    out.print(render.keys_table(keys))


@keys_app.command("revoke")
@friendly
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or prefix")],
                db: DbOpt = None) -> None:
    """Revoke a key by id or prefix."""
    from stageline.store import tenants

    runtime = _open(_settings(db=db), migrate=False)
    with runtime.db.write() as conn:
        if not tenants.revoke_key(conn, key):
            raise ValueError(f"no active key {key!r}")
    out.print(f"revoked {key}")


remote.register(app, executions_app)
