"""Run Stageline's benchmarks, and the same workloads on the engines users would
pick instead; write raw JSON lines and the markdown table.

    python bench/run.py --quick                 # every workload, peers included
    python bench/run.py --full                  # larger W3/W4, 100k-item RSS, 60 s idle
    python bench/run.py --quick --no-peers --sizes tiny   # CI: correctness only
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import peerenv
import report
from procstat import wait_until_quiet
from record import Measurement, append, load
from sizes import BY_NAME, Sizes
from workloads import fanout, idle, latency, lineage, throughput
from workloads import server as server_module
from workloads.server import CONFIGS, Postgres, backend_of

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "idle")
PG_URL = os.environ.get("STAGELINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Options:
    sizes: Sizes
    configs: list[str]
    workloads: list[str]
    peers: list[str]
    pg: Postgres | None
    redis_url: str
    workdir: Path
    raw: Path
    doc: Path | None
    command: str
    quiet: float
    patience: float


def parse(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="quick sizes (default)")
    mode.add_argument("--full", action="store_true", help="full sizes")
    p.add_argument("--sizes", choices=sorted(BY_NAME), help="override the size preset")
    p.add_argument("--repeats", type=int, help="repeats per measurement (default: preset)")
    p.add_argument("--backends", default="sqlite,postgresql",
                   help="sqlite (also --durability strict) and/or postgresql")
    p.add_argument("--configs", help=f"exact Stageline configurations, a subset of "
                   f"{','.join(CONFIGS)} (overrides --backends for Stageline)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"subset of {','.join(WORKLOADS)}")
    p.add_argument("--no-peers", action="store_true", help="Stageline only")
    p.add_argument("--peers-only", action="store_true", help="the peers only")
    p.add_argument("--with-prefect", action="store_true",
                   help="also run Prefect (optional peer, not written yet: skipped)")
    p.add_argument("--peers", help=f"subset of {','.join(peerenv.DEFAULT_PEERS)}")
    p.add_argument("--serve-workers", type=int, default=1,
                   help="worker processes beside Stageline's API for W1-W3 (serve --workers; "
                        "0: the worker inside the API's process, as idle and W4 run)")
    p.add_argument("--pg-url", default=PG_URL, help="admin URL; databases are created here")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/12",
                   help="Redis database for Celery (flushed before each run)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/stageline-bench/work"))
    p.add_argument("--raw-dir", type=Path, default=BENCH / "results" / "raw")
    p.add_argument("--doc", type=Path, help="markdown to update (default docs/benchmarks.md, "
                   "none for --sizes tiny)")
    p.add_argument("--no-doc", action="store_true")
    p.add_argument("--quiet", type=float, default=0.25,
                   help="before each repeat, wait for the machine's CPUs to be less busy "
                        "than this fraction (other work skews every number)")
    p.add_argument("--patience", type=float,
                   help="seconds to wait for quiet (default 30, 0 for --sizes tiny)")
    args = p.parse_args(argv)
    server_module.SERVE_WORKERS = args.serve_workers
    preset = args.sizes or ("full" if args.full else "quick")
    sizes = BY_NAME[preset]
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})
    backends = _split(args.backends)
    configs = [c for c in CONFIGS if backend_of(c) in backends]
    if args.configs:
        configs = [c for c in CONFIGS if c in _split(args.configs)]
        backends = [backend_of(c) for c in configs]
    peers = [] if args.no_peers else _split(args.peers or ",".join(peerenv.DEFAULT_PEERS))
    if args.with_prefect:
        print("--with-prefect: there is no Prefect peer yet (bench/peers/prefect_peer.py); "
              "skipped", file=sys.stderr)
    doc = None if args.no_doc else args.doc or (
        None if preset == "tiny" else REPO / "docs" / "benchmarks.md")
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{preset}"
    if args.peers_only:
        configs = []
    return Options(sizes, configs, _split(args.workloads), peers,
                   Postgres(args.pg_url) if "postgresql" in backends else None,
                   args.redis_url, args.workdir, args.raw_dir / f"{run_id}.jsonl", doc,
                   "python bench/run.py " + shlex.join(argv), args.quiet,
                   args.patience if args.patience is not None else (0 if preset == "tiny"
                                                                     else 30))


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Job:
    """One measurement to repeat: `once(repeat=r)` runs it and returns what it measured."""

    system: str
    config: str
    workload: str
    once: Callable[..., list[Measurement]]

    @property
    def label(self) -> str:
        return f"{self.workload} {self.system} {self.config}"


def main(argv: list[str]) -> int:
    opts = parse(argv)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    print(f"sizes {opts.sizes.name}, configs {opts.configs}, workloads {opts.workloads}, "
          f"peers {opts.peers or 'none'}; raw -> {opts.raw}", flush=True)
    measured = run_jobs(opts, stageline_jobs(opts))
    measured += run_lineage(opts)
    measured += run_jobs(opts, peer_jobs(opts))
    failed = [m for m in measured if not m.ok]
    if opts.doc is not None:
        report.update_doc(opts.doc, load(opts.raw),
                          opts.sizes, opts.command)
        print(f"table written to {opts.doc}")
    print(f"{len(measured)} measurements, {len(failed)} failed checks; raw: {opts.raw}")
    return 1 if failed else 0


def stageline_jobs(opts: Options) -> list[Job]:
    wanted = set(opts.workloads)
    jobs = []
    for config in opts.configs:
        if "W1" in wanted:
            jobs.append(_job(opts, "W1", config, throughput.run))
        if "W2" in wanted:
            jobs.append(_job(opts, "W2", config, latency.run))
    for config in (c for c in opts.configs if c != "sqlite-strict"):
        if wanted & {"W3", "W5"}:
            jobs.append(_job(opts, "W3+W5", config, fanout.run, with_replay="W5" in wanted))
        if "W3" in wanted and opts.sizes.w3_large_items:
            jobs.append(_job(opts, "W3-large", config, fanout.run,
                             items=opts.sizes.w3_large_items, with_replay=False))
        if "idle" in wanted:
            jobs.append(_job(opts, "idle", config, idle.run))
    return jobs


def _job(opts: Options, workload: str, config: str, fn: Callable[..., list[Measurement]],
         **extra: Any) -> Job:
    return Job("stageline", config, workload, partial(
        fn, config=config, sizes=opts.sizes, workdir=opts.workdir, pg=opts.pg, **extra))


def peer_jobs(opts: Options) -> list[Job]:
    jobs = []
    for peer in opts.peers:
        python = peerenv.ensure(peer)
        for config in peerenv.configs_of(peer):
            if backend_of(config) == "postgresql" and opts.pg is None:
                continue
            for workload in ("W1", "W2"):
                if workload in opts.workloads:
                    jobs.append(Job(peer, config, workload, partial(
                        peerenv.run, python=python, peer=peer, config=config,
                        workload=workload, sizes=opts.sizes, pg=opts.pg,
                        redis_url=opts.redis_url, workdir=opts.workdir)))
    return jobs


def run_lineage(opts: Options) -> list[Measurement]:
    """W4 builds (or finds) its database once per configuration, then repeats."""
    if "W4" not in opts.workloads:
        return []
    out: list[Measurement] = []
    for config in (c for c in opts.configs if c != "sqlite-strict"):
        began = time.perf_counter()
        try:
            with lineage.dataset(config, opts.sizes, opts.workdir, opts.pg) as (where, data):
                print(f"  W4 {config}: {data.entries} lineage entries ready in "
                      f"{time.perf_counter() - began:.0f} s", flush=True)
                out += run_jobs(opts, [Job("stageline", config, "W4", partial(
                    lineage.run, where=where, data=data, sizes=opts.sizes))])
        except Exception as exc:
            out += _record(opts, [_failure(Job("stageline", config, "W4", lineage.run), exc)])
    return out


def run_jobs(opts: Options, jobs: list[Job]) -> list[Measurement]:
    out: list[Measurement] = []
    for job in jobs:
        for r in range(opts.sizes.repeats):
            source = source_digest()
            busy = wait_until_quiet(opts.quiet, opts.patience) if opts.patience else -1.0
            load_start = os.getloadavg()[0]
            began = time.perf_counter()
            try:
                measured = job.once(repeat=r)
            except Exception as exc:
                measured = [_failure(job, exc, r)]
            for m in measured:
                m.machine = {"busy_before": busy, "load1_start": load_start,
                             "load1_end": os.getloadavg()[0]}
                m.source = source
            _record(opts, measured)
            for m in measured:
                print(f"  {job.label} #{r + 1}: {report.one_line(m)} "
                      f"({time.perf_counter() - began:.1f} s)", flush=True)
            out += measured
    return out


def source_digest() -> str:
    """A digest of src/stageline: other work may change the code between two rows."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "stageline").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _record(opts: Options, measured: list[Measurement]) -> list[Measurement]:
    for m in measured:
        m.run_id = opts.raw.stem
    append(opts.raw, measured)
    return measured


def _failure(job: Job, exc: BaseException, repeat: int = 0) -> Measurement:
    traceback.print_exception(exc)
    return Measurement(job.system, job.config, job.workload, repeat, metrics={}, ok=False,
                       notes=f"{type(exc).__name__}: {exc}"[:2000])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
