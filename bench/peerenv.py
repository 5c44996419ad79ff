"""The peers' virtualenvs (outside the repository, pinned) and running their scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from record import Measurement
from sizes import Sizes
from workloads.server import Postgres

BENCH = Path(__file__).resolve().parent
VENVS = Path(os.environ.get("STAGELINE_BENCH_VENVS", "/tmp/stageline-bench/venvs"))
PYTHON = os.environ.get("STAGELINE_BENCH_PEER_PYTHON", "python3.11")
PINS: dict[str, list[str]] = {
    "dbos": ["dbos==3.4.0"],
    "celery": ["celery[redis]==5.7.0", "redis==8.1.0"],
    "procrastinate": ["procrastinate==3.10.0"],
}
CONFIGS: dict[str, list[str]] = {
    "dbos": ["sqlite", "postgresql"],
    "celery": ["redis"],
    "procrastinate": ["postgresql"],
}
DEFAULT_PEERS = ("dbos", "celery", "procrastinate")
TIMEOUT = 3600


def configs_of(peer: str) -> list[str]:
    return CONFIGS[peer]


def ensure(peer: str) -> Path:
    """The peer's venv python, creating the venv and installing its pins when needed."""
    venv = VENVS / peer
    python = venv / "bin" / "python"
    marker = venv / "stageline-bench-pins.txt"
    wanted = "\n".join(PINS[peer])
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"  creating {venv} with {' '.join(PINS[peer])}", flush=True)
    subprocess.run([PYTHON, "-m", "venv", "--clear", str(venv)], check=True)
    with (VENVS / f"{peer}-pip.log").open("wb") as log:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS[peer]], check=True,
                       stdout=log, stderr=subprocess.STDOUT)
    marker.write_text(wanted)
    return python


def run(python: Path, peer: str, config: str, workload: str, sizes: Sizes, repeat: int,
        pg: Postgres | None, redis_url: str, workdir: Path) -> list[Measurement]:
    """One repeat of one workload, in a fresh process on a fresh store."""
    n = sizes.w1_executions if workload == "W1" else sizes.w2_executions
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        if config == "postgresql":
            assert pg is not None
            with pg.database(f"bench_{peer}") as url:
                data = _run_script(python, peer, config, workload, n, sizes, url, redis_url,
                                   Path(tmp))
        else:
            url = f"sqlite:///{Path(tmp) / 'peer.sqlite'}"
            data = _run_script(python, peer, config, workload, n, sizes, url, redis_url,
                               Path(tmp))
    return [Measurement(
        peer, config, workload, repeat, metrics=data["metrics"], checks=data["checks"],
        ok=bool(data["ok"]), peak_rss_mb=data["peak_rss_mb"],
        cpu_ms_per_execution=data["cpu_ms_per_execution"],
        size=data["size"], notes=f"{data['notes']}; versions {json.dumps(data['versions'])}",
    )]


def _run_script(python: Path, peer: str, config: str, workload: str, n: int, sizes: Sizes,
                db_url: str, redis_url: str, tmp: Path) -> dict[str, Any]:
    cmd = [str(python), str(BENCH / "peers" / f"{peer}_peer.py"), "--config", config,
           "--workload", workload, "--n", str(n), "--threads", str(sizes.client_threads),
           "--db-url", db_url, "--redis-url", redis_url, "--workdir", str(tmp)]
    env = {**os.environ, "BENCH_PG_URL": db_url, "BENCH_REDIS_URL": redis_url}
    log = tmp / "peer.log"
    with log.open("wb") as err:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, env=env,
                              timeout=TIMEOUT, cwd=tmp)
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{peer} {config} {workload} exited {done.returncode}:\n"
                           f"{log.read_text()[-3000:]}")
    data: dict[str, Any] = json.loads(lines[-1])
    return data


if __name__ == "__main__":
    for name in sys.argv[1:] or DEFAULT_PEERS:
        print(name, ensure(name))
