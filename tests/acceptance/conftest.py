"""A real `stageline serve` process over real HTTP, on the suite's backend."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    db_url: str
    storage: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, api_key: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": api_key} if api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(pipeline_file: Path | str, db_url: str, storage: str, log: Path,
                 *extra: str, env: dict[str, str] | None = None) -> Server:
    """Start `stageline serve` and wait until /healthz answers."""
    if not db_url.startswith("sqlite"):
        subprocess.run([sys.executable, "-m", "stageline.cli", "db", "upgrade", "--db", db_url],
                       check=True, capture_output=True)
    port = free_port()
    cmd = [sys.executable, "-m", "stageline.cli", "serve", str(pipeline_file), "--db", db_url,
           "--storage", storage, "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "STAGELINE_POLL_INTERVAL": "0.05",
                                 **(env or {})})
    server = Server(f"http://127.0.0.1:{port}", db_url, storage, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not start: {log.read_text()}")


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    """`stageline serve examples/words.py` on this test's database."""
    srv = start_server(EXAMPLES / "words.py", db_url, str(tmp_path / "data"),
                       tmp_path / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


def wait_for_status(client: httpx.Client, execution_id: str, statuses: set[str],
                    timeout: float = 30) -> dict[str, object]:
    """Poll GET /api/v1/executions/{id} until `stageline_status` is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, object] = client.get(f"/api/v1/executions/{execution_id}").json()
        if body.get("stageline_status") in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} never reached {statuses}")
