"""Stage storage on S3 through s3fs, against a local moto server.

With a tiny inline limit every item goes to the bucket, at
`{prefix}/{execution_id}/{stage}/{item_key}`, and reads back through the
store. The endpoint comes from the environment, as in a deployment:
AWS_ENDPOINT_URL (read by botocore) in the test process, and
FSSPEC_S3_ENDPOINT_URL (fsspec's per-protocol configuration) in a real
`stageline worker` process; credentials from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stageline import Pipeline
from stageline.domain.status import EXECUTION_TERMINAL
from stageline.runtime import Runtime
from stageline.settings import Settings
from stageline.store import executions
from stageline.store.executions import NewExecution
from stageline.store.items import StoredItem
from stageline.store.records import ExecutionRecord
from stageline.store.stages import read_stage
from tests.acceptance.conftest import free_port

s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed (pip install s3fs)")
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install moto[server])")
pytest.importorskip("moto.server", reason="moto is not installed (pip install moto[server])")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
TEXT = "\n".join(f"line number {n} has some words in it" for n in range(5))


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`moto_server` on a free loopback port, for the whole module."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _answers(endpoint), 30, f"moto_server on {endpoint}", proc, log)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/moto-api/", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _wait_for(check: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited\n{log.read_text() if log else ''}")
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text() if log else ''}")


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; this process reaches it through AWS_ENDPOINT_URL."""
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep an old endpoint
    name = f"stageline-{uuid.uuid4().hex[:12]}"
    _s3(moto_endpoint).create_bucket(Bucket=name)
    return name


def _s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "region_name": CREDENTIALS["AWS_DEFAULT_REGION"]}


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    s3 = _s3(endpoint)
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


@pytest.fixture
def s3_runtime(db_url: str, bucket: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(db=db_url, storage=f"s3://{bucket}/runs", inline_limit=16,
                        poll_interval=0.05, lease_seconds=5, concurrency=2)
    runtime = Runtime.open(settings, migrate_schema=True)
    try:
        yield runtime
    finally:
        runtime.close()


def split(doc: dict[str, str]) -> list[str]:
    return doc["text"].splitlines()


def measure(line: str) -> dict[str, Any]:
    return {"line": line, "words": len(line.split())}


def _pipeline() -> Pipeline:
    p = Pipeline("s3_lines")
    p.step(output="lines", fan_out=True)(split)
    p.step(output="measured")(measure)
    return p


def _start(runtime: Runtime, pipeline: str, payload: Any) -> ExecutionRecord:
    assert runtime.default_tenant is not None
    with runtime.db.write() as conn:
        record, _ = executions.create(conn, runtime.default_tenant,
                                      NewExecution(runtime.versions[pipeline], payload),
                                      runtime.blobs, runtime.settings.inline_limit)
    return record


def _items(runtime: Runtime, record: ExecutionRecord, stage: str) -> list[StoredItem]:
    with runtime.db.read() as conn:
        return read_stage(conn, record.id, stage)


def _expected_keys(record: ExecutionRecord) -> set[str]:
    """Every stored item's object: `{execution}/{stage}/{key}~{content hash prefix}`."""
    lines = [f"runs/{record.id}/lines/0/{n:05d}~" for n in range(5)]
    measured = [f"runs/{record.id}/measured/0/{n:05d}~" for n in range(5)]
    return {f"runs/{record.id}/input/0~", *lines, *measured}


def test_items_are_written_to_s3_and_read_back(s3_runtime: Runtime, bucket: str,
                                               moto_endpoint: str) -> None:
    pipeline = _pipeline()
    s3_runtime.handlers.update(pipeline.handlers)
    s3_runtime.register([pipeline])
    record = _start(s3_runtime, "s3_lines", {"text": TEXT})

    s3_runtime.worker().run_until_idle(60)

    measured = _items(s3_runtime, record, "measured")
    assert [i.load(s3_runtime.blobs) for i in measured] == [measure(x) for x in TEXT.splitlines()]
    assert all(i.data is None and i.storage_path for i in measured)
    objects = _objects(moto_endpoint, bucket)
    assert {name.rpartition("~")[0] + "~" for name in objects} == _expected_keys(record)
    for item in measured:
        assert objects[f"runs/{item.storage_path}"] == item.raw(s3_runtime.blobs)
    assert s3_runtime.blobs.url(str(measured[0].storage_path)).startswith(f"s3://{bucket}/runs/")


def test_worker_process_uses_fsspec_endpoint_variable(s3_runtime: Runtime, bucket: str,
                                                     moto_endpoint: str, tmp_path: Path) -> None:
    s3_runtime.load_pipelines(str(EXAMPLES / "words.py"))
    record = _start(s3_runtime, "words", {"text": TEXT})
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env.update(CREDENTIALS, FSSPEC_S3_ENDPOINT_URL=moto_endpoint, STAGELINE_INLINE_LIMIT="16",
               STAGELINE_POLL_INTERVAL="0.05")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "stageline.cli", "worker", str(EXAMPLES / "words.py"),
             "--db", s3_runtime.settings.db, "--storage", s3_runtime.settings.storage],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        done = _wait_for(lambda: _settled(s3_runtime, record), 60, "the execution", worker, log)
    finally:
        worker.terminate()
        worker.wait(20)
    assert done.status == "completed", log.read_text()
    assert done.result == 5 * 8
    counted = _items(s3_runtime, record, "counted")
    assert len(counted) == 5 and all(i.storage_path for i in counted)
    objects = _objects(moto_endpoint, bucket)
    assert {f"runs/{i.storage_path}" for i in counted} <= set(objects)
    assert [i.load(s3_runtime.blobs)["words"] for i in counted] == [8] * 5


def _settled(runtime: Runtime, record: ExecutionRecord) -> ExecutionRecord | None:
    assert runtime.default_tenant is not None
    with runtime.db.read() as conn:
        now = executions.get(conn, runtime.default_tenant, record.id)
    return now if now.status in {str(s) for s in EXECUTION_TERMINAL} else None
