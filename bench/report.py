"""The markdown table: median and min-max of each metric over the repeats, the
target, whether it was met, and what each configuration loses in a crash.

    python bench/report.py bench/results/raw/<run>.jsonl [...] [--doc docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sqlite3
import subprocess
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from record import Measurement, load, spread
from sizes import BY_NAME, Sizes

# What each configuration loses; the same words as docs/guarantees.md where they overlap.
DURABILITY: dict[tuple[str, str], str] = {
    ("stageline", "sqlite"): "crash: nothing committed (WAL); power loss: the last commits "
                             "(synchronous=NORMAL)",
    ("stageline", "sqlite-strict"): "crash: nothing committed; power loss: nothing committed "
                                    "(synchronous=FULL)",
    ("stageline", "postgresql"): "crash and power loss: nothing committed (synchronous_commit=on)",
    ("dbos", "sqlite"): "crash and power loss: nothing committed (rollback journal, "
                        "synchronous=FULL); a step in flight runs again",
    ("dbos", "postgresql"): "crash and power loss: nothing committed; a step in flight runs "
                            "again",
    ("celery", "redis"): "worker crash: tasks it had started (acked on receipt, the default); "
                         "Redis restart or power loss: every queued task and result (this "
                         "Redis has no persistence: appendonly no, save '')",
    ("procrastinate", "postgresql"): "crash and power loss: nothing committed; a job in flight "
                                     "stalls until retried, and may defer its successor twice",
}


# The same, in a few words, for the results table: lost on a crash / on a power loss.
LOSES: dict[tuple[str, str], str] = {
    ("stageline", "sqlite"): "nothing / last commits",
    ("stageline", "sqlite-strict"): "nothing / nothing",
    ("stageline", "postgresql"): "nothing / nothing",
    ("dbos", "sqlite"): "nothing / nothing",
    ("dbos", "postgresql"): "nothing / nothing",
    ("celery", "redis"): "started tasks / everything",
    ("procrastinate", "postgresql"): "nothing / nothing",
}


@dataclass(frozen=True)
class Row:
    """Which metric of which workload goes in the table, and its target if any."""

    workload: str
    metric: str
    label: str
    unit: str
    target: str = ""
    met: Callable[[float], bool] | None = None
    configs: tuple[str, ...] = ()  # where the target applies (empty: everywhere)


ROWS = [
    Row("W1", "steps_per_s", "throughput", "steps/s", "≥ 3x best peer"),
    Row("W2", "p50_ms", "latency p50", "ms", "≤ 10 ms", lambda v: v <= 10, ("sqlite",)),
    Row("W2", "p95_ms", "latency p95", "ms", "≤ 25 ms", lambda v: v <= 25, ("sqlite",)),
    Row("W3", "item_steps_per_s", "fan-out", "item-steps/s", "≥ 5,000", lambda v: v >= 5000,
        ("sqlite",)),
    Row("W4", "page_p95_ms", "lineage page p95", "ms", "≤ 50 ms", lambda v: v <= 50),
    Row("W4", "chain_p95_ms", "item chain p95", "ms", "≤ 20 ms", lambda v: v <= 20),
    Row("W4", "filter_p95_ms", "filtered list p95", "ms", "≤ 20 ms", lambda v: v <= 20),
    Row("W5", "last_step_pct_of_full", "replay last step", "% of full run", "≤ 25 %",
        lambda v: v <= 25),
    Row("W5", "last_item_step_pct_of_full", "replay last item step", "% of full run"),
    Row("idle", "cpu_pct_of_core", "idle CPU", "% of a core", "< 1 %", lambda v: v < 1),
    Row("idle", "rss_mb", "idle RSS", "MB", "< 150 MB", lambda v: v < 150),
    Row("idle", "ready_s", "start to /healthz", "s", "< 2 s", lambda v: v < 2),
]
SYSTEM_ORDER = ["stageline", "dbos", "celery", "procrastinate"]


def one_line(m: Measurement) -> str:
    parts = [f"{k}={v:.4g}" for k, v in m.metrics.items()]
    if m.peak_rss_mb is not None:
        parts.append(f"rss={m.peak_rss_mb:.0f}MB")
    status = "ok" if m.ok else f"FAILED {m.notes} {m.checks}"
    return f"{' '.join(parts)} [{status}]"


def _group(measurements: list[Measurement]) -> dict[tuple[str, str, str, int], list[Measurement]]:
    groups: dict[tuple[str, str, str, int], list[Measurement]] = defaultdict(list)
    for m in measurements:
        size = m.size.get("items", 0) if m.workload == "W3" else 0
        groups[(m.system, m.config, m.workload, size)].append(m)
    return groups


def _order(key: tuple[str, str, str, int]) -> tuple[int, str, int, str]:
    system, config, workload, size = key
    rank = SYSTEM_ORDER.index(system) if system in SYSTEM_ORDER else 99
    return (rank, workload, size, config)


def best_peer_w1(measurements: list[Measurement]) -> tuple[str, float] | None:
    best: tuple[str, float] | None = None
    for (system, config, workload, _), ms in _group(measurements).items():
        values = [m.metrics["steps_per_s"] for m in ms if m.ok and "steps_per_s" in m.metrics]
        if system != "stageline" and workload == "W1" and values:
            median = spread(values).median
            if best is None or median > best[1]:
                best = (f"{system} {config}", median)
    return best


def table(measurements: list[Measurement]) -> str:
    best = best_peer_w1(measurements)
    lines = ["| system | config | workload | metric | median | min-max | n | target | met "
             "| peak RSS MB | CPU ms/exec | checks | loses (crash / power) |",
             "|---|---|---|---|---:|---:|---:|---|---|---:|---:|---|---|"]
    groups = _group(measurements)
    for key in sorted(groups, key=_order):
        system, config, workload, size = key
        ms = groups[key]
        measured = [m for m in ms if m.metrics]
        for row in (r for r in ROWS if r.workload == workload):
            values = [m.metrics[row.metric] for m in measured if row.metric in m.metrics]
            if values:
                lines.append(_line(system, config, size, row, values, measured, best))
        for m in ms:
            if not m.metrics:
                reason = m.notes.splitlines()[0][:160] if m.notes else "no result"
                lines.append(f"| {system} | {config} | {workload} | (repeat {m.repeat + 1} "
                             f"lost) | — | — | — | | | | | {_escape(reason)} | |")
    lines += _rss_growth(groups)
    return "\n".join(lines)


def _line(system: str, config: str, size: int, row: Row, values: list[float],
          ms: list[Measurement], best: tuple[str, float] | None) -> str:
    s = spread(values)
    target, met = _target(system, config, row, s.median, best)
    rss = [m.peak_rss_mb for m in ms if m.peak_rss_mb is not None]
    cpu = [m.cpu_ms_per_execution for m in ms if m.cpu_ms_per_execution is not None]
    checks = "all pass" if all(m.ok for m in ms) else "FAILED: " + "; ".join(
        f"{k}: {v}" for m in ms for k, v in m.checks.items() if v["expected"] != v["found"])
    workload = f"{row.workload} ({size:,} items)" if size else row.workload
    return (f"| {system} | {config} | {workload} | {row.label} ({row.unit}) | {_num(s.median)} "
            f"| {_num(s.low)}-{_num(s.high)} | {s.n} | {target} | {met} "
            f"| {_num(spread(rss).median) if rss else '—'} "
            f"| {_num(spread(cpu).median) if cpu else '—'} | {_escape(checks[:300])} "
            f"| {LOSES.get((system, config), '?')} |")


def _target(system: str, config: str, row: Row, median: float,
            best: tuple[str, float] | None) -> tuple[str, str]:
    if system != "stageline" or not row.target:
        return "", ""
    if row.workload == "W1":
        if config == "sqlite-strict" or best is None:
            return "", ""
        goal = 3 * best[1]
        return (f"≥ {_num(goal)} (3x {best[0]})",
                "met" if median >= goal else f"**missed** ({median / best[1]:.2f}x best)")
    if row.configs and config not in row.configs:
        return "", ""
    assert row.met is not None
    return row.target, "met" if row.met(median) else "**missed**"


def _rss_growth(groups: dict[tuple[str, str, str, int], list[Measurement]]) -> list[str]:
    lines = []
    for (system, config, workload, size), ms in sorted(groups.items()):
        if workload != "W3" or system != "stageline":
            continue
        larger = [(k, v) for k, v in groups.items()
                  if k[:3] == (system, config, workload) and k[3] > size]
        for (_, _, _, big), big_ms in larger:
            small_rss = spread([m.peak_rss_mb or 0.0 for m in ms]).median
            big_rss = spread([m.peak_rss_mb or 0.0 for m in big_ms]).median
            growth = big_rss - small_rss
            target, met = ("≤ 100 MB", "met" if growth <= 100 else "**missed**") \
                if config == "sqlite" else ("", "")
            lines.append(f"| {system} | {config} | W3 | RSS growth {size:,} → {big:,} items "
                         f"(MB) | {_num(growth)} | {_num(small_rss)} → {_num(big_rss)} | "
                         f"{len(big_ms)} | {target} | {met} | | | | |")
    return lines


def load_text(measurements: list[Measurement]) -> str:
    loads = [m.machine["load1_start"] for m in measurements if "load1_start" in m.machine]
    if not loads:
        return "not recorded"
    s = spread(loads)
    return (f"1-minute load average at the start of each repeat: median {s.median:.1f} "
            f"(min {s.low:.1f}, max {s.high:.1f}) on {os.cpu_count()} CPUs")


def durability_table(measurements: list[Measurement]) -> str:
    seen = sorted({(m.system, m.config) for m in measurements},
                  key=lambda p: (SYSTEM_ORDER.index(p[0]) if p[0] in SYSTEM_ORDER else 99, p[1]))
    lines = ["| system | config | what a crash or a power loss costs |", "|---|---|---|"]
    lines += [f"| {s} | {c} | {_escape(DURABILITY.get((s, c), '?'))} |" for s, c in seen]
    return "\n".join(lines)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 2**20:.1f} GiB memory, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def versions(measurements: list[Measurement]) -> str:
    parts = [f"stageline {version('stageline')}", f"SQLite {sqlite3.sqlite_version}",
             f"SQLAlchemy {version('sqlalchemy')}", f"uvicorn {version('uvicorn')}",
             f"fastapi {version('fastapi')}", _server_version()]
    peers = sorted({m.notes.split("versions ", 1)[1] for m in measurements
                    if "versions " in m.notes})
    return "; ".join(p for p in parts if p) + ("; peers: " + ", ".join(peers) if peers else "")


def _server_version() -> str:
    try:
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-Atc",
                              "show server_version"], capture_output=True, text=True, timeout=10)
        return f"PostgreSQL {out.stdout.strip()}" if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def section(measurements: list[Measurement], sizes: Sizes, command: str) -> str:
    run_ids = sorted({m.run_id for m in measurements})
    return "\n".join([
        f"Command: `{command}` (run {', '.join(run_ids)}; raw JSON lines in "
        "`bench/results/raw/`, not committed).",
        "",
        f"Machine: {machine()}.",
        "",
        f"Versions: {versions(measurements)}.",
        "",
        f"Sizes: {_sizes_text(sizes)}.",
        "",
        f"Machine load: {load_text(measurements)}.",
        "",
        table(measurements),
        "",
        "Durability of each configuration measured:",
        "",
        durability_table(measurements),
    ])


def _sizes_text(s: Sizes) -> str:
    large = f", RSS also at {s.w3_large_items:,} items" if s.w3_large_items else ""
    return (f"{s.repeats} repeats; W1 {s.w1_executions:,} executions from "
            f"{s.client_threads} client threads; W2 {s.w2_executions} executions; W3 "
            f"{s.w3_items:,} items{large}; W4 {s.w4_entries:,} lineage entries, "
            f"{s.w4_requests} requests per query; idle {s.idle_seconds:g} s")


def update_doc(doc: Path, measurements: list[Measurement], sizes: Sizes, command: str,
               name: str | None = None) -> None:
    """Replace the section `name` (default: the size's name) between its markers;
    other text stays."""
    name = name or sizes.name
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    body = f"{begin}\n{section(measurements, sizes, command)}\n{end}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else f"{text}\n{body}\n"
    doc.write_text(text)


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("raw", type=Path, nargs="+",
                   help="JSON lines files written by bench/run.py (of one size)")
    p.add_argument("--doc", type=Path, help="update this markdown file instead of printing")
    p.add_argument("--command", default="python bench/run.py")
    p.add_argument("--section", help="markers to write between (default: the size's name)")
    args = p.parse_args()
    measurements = [m for path in args.raw for m in load(path)]
    sizes = BY_NAME[args.raw[0].stem.rsplit("-", 1)[-1]]
    if args.doc:
        update_doc(args.doc, measurements, sizes, args.command, args.section)
    else:
        print(section(measurements, sizes, args.command))


if __name__ == "__main__":
    main()
