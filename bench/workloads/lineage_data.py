"""W4's database: executions with many lineage entries each, bulk-inserted with
SQLAlchemy Core (no worker involved). SQLite copies are cached under /tmp.

Each execution's entries have the shape a `fanout` run leaves: the input's root,
the split, then per item one `enrich` entry and one `score` entry below it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from stageline.runtime import Runtime
from stageline.settings import Settings
from stageline.store.ids import new_id
from stageline.store.migrate import head_revision
from stageline.store.pipelines import Version
from stageline.store.tables import executions, lineage_entries
from workloads.server import PIPELINES

CACHE = Path("/tmp/stageline-bench/cache")
BATCH = 20_000
SAMPLES = 200


@dataclass(frozen=True)
class Dataset:
    executions: int
    entries: int
    page_execution: str  # an execution in the middle, for seed 000's page
    items_per_execution: int
    chain_samples: list[str]  # correlation ids of `enrich` entries, for chain queries


def cached_sqlite(executions_n: int, per_execution: int) -> tuple[str, Dataset]:
    """The SQLite database for these sizes at the current schema, built once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = CACHE / f"lineage-{executions_n}x{per_execution}-{head_revision()}"
    db_file, meta_file = stem.with_suffix(".db"), stem.with_suffix(".json")
    if not (db_file.exists() and meta_file.exists()):
        # Built under a private name, then renamed: concurrent runs never see half a file.
        tmp = stem.with_suffix(f".{os.getpid()}.tmp")
        dataset = build(f"sqlite:///{tmp}", executions_n, per_execution, CACHE / "storage")
        tmp_meta = tmp.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(asdict(dataset)))
        os.replace(tmp, db_file)
        os.replace(tmp_meta, meta_file)
    return f"sqlite:///{db_file}", Dataset(**json.loads(meta_file.read_text()))


def build(db_url: str, executions_n: int, per_execution: int, storage: Path) -> Dataset:
    """Migrate, register the pipeline, insert the executions and their entries."""
    runtime = Runtime.open(Settings(db=db_url, storage=str(storage)), migrate_schema=True)
    try:
        runtime.load_pipelines(str(PIPELINES / "fanout.py"))
        assert runtime.default_tenant is not None
        version = runtime.versions["fanout"]
        ids = [new_id() for _ in range(executions_n)]
        samples: list[str] = []
        with runtime.db.write() as conn:
            conn.execute(executions.insert(),
                         [_execution_row(runtime.default_tenant, version, e, i, per_execution)
                          for i, e in enumerate(ids)])
            batch: list[dict[str, Any]] = []
            for i, execution_id in enumerate(ids):
                rows = list(_entries(runtime.default_tenant, execution_id, i, per_execution))
                samples += [r["correlation_id"] for r in rows if r["route_id"] == "enrich"][:2]
                batch += rows
                if len(batch) >= BATCH:
                    _insert(conn, batch)
                    batch = []
            _insert(conn, batch)
        _analyze(runtime)
    finally:
        runtime.close()
    random.Random(0).shuffle(samples)
    return Dataset(executions_n, executions_n * per_execution, str(ids[executions_n // 2]),
                   (per_execution - 2) // 2, samples[:SAMPLES])


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(lineage_entries.insert(), rows)


def _analyze(runtime: Runtime) -> None:
    with runtime.db.write() as conn:
        conn.execute(text("ANALYZE"))


BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _execution_row(tenant: UUID, version: Version, execution_id: UUID, index: int,
                   per_execution: int) -> dict[str, Any]:
    at = BASE + timedelta(minutes=index)
    return {"id": execution_id, "tenant_id": tenant, "pipeline_id": version.pipeline_id,
            "config_id": version.config_id, "status": "completed",
            "payload": {"doc": f"d{index}", "n": (per_execution - 2) // 2},
            "result": {"count": (per_execution - 2) // 2}, "retry_count": 0,
            "skip_cache": False, "created_at": at, "started_at": at, "completed_at": at,
            "updated_at": at}


def _entries(tenant: UUID, execution_id: UUID, index: int,
             per_execution: int) -> Iterator[dict[str, Any]]:
    at = BASE + timedelta(minutes=index)
    root, split = str(new_id()), str(new_id())
    yield _entry(tenant, execution_id, root, None, None, "input", "initiated", "0", at)
    yield _entry(tenant, execution_id, split, root, "split", "items", "completed", "0", at)
    for j in range((per_execution - 2) // 2):
        key = f"0/{j:05d}"
        enrich = str(new_id())
        moment = at + timedelta(microseconds=10 * (j + 1))
        yield _entry(tenant, execution_id, enrich, split, "enrich", "enriched", "completed",
                     key, moment)
        yield _entry(tenant, execution_id, str(new_id()), enrich, "score", "scored",
                     "completed", key, moment + timedelta(microseconds=5))


def _entry(tenant: UUID, execution_id: UUID, correlation_id: str, parent: str | None,
           route: str | None, stage: str, status: str, key: str,
           at: datetime) -> dict[str, Any]:
    return {"id": new_id(), "tenant_id": tenant, "correlation_id": correlation_id,
            "parent_correlation_id": parent, "replay_batch_id": None,
            "execution_id": execution_id, "route_id": route,
            "adapter_name": f"stageline_user_fanout:{route}" if route else None,
            "adapter_index": 0 if route else None, "stage_name": stage, "stage_status": status,
            "stage_input_hash": "sha256:" + correlation_id.replace("-", "") * 2,
            "item_key": key, "attempt": 1, "started_at": at,
            "completed_at": at + timedelta(microseconds=3), "duration_ms": 0.003,
            "meta": {"worker": "bench", "attempt": 1, "outputs": 1}, "error_info": None}
