"""The README's commands do what the README says.

Each runs as a real `stageline` subprocess in a scratch working directory (the
examples write their index relative to it), with the database and the stage
storage in the test's tmp_path instead of `./stageline.db` and `./stageline-data`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest

from stageline.store import executions, lineage, migrate, pipelines, tenants
from stageline.store.db import Database
from stageline.store.records import LineageRecord, StepRunRecord
from stageline.store.stages import read_stage
from tests.conftest import BACKEND, scratch_database

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ENV = {**os.environ, "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1"}
FIRST_COMMAND = "stageline run examples/docs_ingest.py --input '{\"folder\": \"examples/docs\"}'"


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "stageline.cli", *args[1:]] if args[0] == "stageline" \
        else [sys.executable, *args[1:]] if args[0] == "python" else args
    return subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=120)


def migrated(url: str) -> Database:
    database = Database(url)
    if BACKEND != "sqlite":  # the CLI migrates SQLite only
        migrate.upgrade(database)
    return database


def execution_id_in(output: str, pipeline: str) -> UUID:
    found = re.search(rf"^execution (\S+) of {pipeline}$", output, re.MULTILINE)
    assert found, output
    return UUID(found.group(1))




@dataclass(frozen=True)
class Ingested:
    cwd: Path
    database: Database
    execution_id: UUID


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    """The README's first command, run once for the module."""
    assert FIRST_COMMAND in README
    cwd = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", cwd / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with scratch_database(cwd) as db_url:
        database = migrated(db_url)
        try:
            done = run([*shlex.split(FIRST_COMMAND), "--db", db_url,
                        "--storage", str(cwd / "data")], cwd)
            assert done.returncode == 0, done.stdout + done.stderr
            yield Ingested(cwd, database, execution_id_in(done.stdout, "docs-ingest"))
        finally:
            database.dispose()


def completed_attempts(entries: list[LineageRecord], step: StepRunRecord) -> list[LineageRecord]:
    return [e for e in entries if e.route_id == step.step_type and e.stage_status == "completed"]


def test_the_first_command_completes_with_lineage_for_every_item(ingested: Ingested) -> None:
    with ingested.database.read() as conn:
        tenant = tenants.ensure_tenant(conn)
        record = executions.get(conn, tenant, ingested.execution_id)
        steps = executions.steps_of(conn, record.id)
        config = pipelines.config_of(conn, record.config_id)
        total, entries = lineage.for_execution(conn, record.id, 100_000)
        stages = {s: read_stage(conn, record.id, s)
                  for s in {st.input_stage for st in steps} | {st.output_stage for st in steps}}
    assert record.status == "completed"
    assert total == len(entries)
    documents = [p for p in (ROOT / "examples" / "docs").iterdir() if p.is_file()]
    assert len(stages["documents"]) == len(documents)
    assert len(stages["index"]) == 1
    for step in steps:
        assert step.status == "completed", step
        done = completed_attempts(entries, step)
        assert len(done) == step.completed, step
        consumed = {e.item_key for e in done}
        wanted = ({None} if config.steps[step.step_index].collect
                  else {item.key for item in stages[step.input_stage]})
        assert consumed == wanted, step.step_type  # every input item, once
        producers = {e.correlation_id for e in done if e.stage_name == step.output_stage}
        assert {item.correlation_id for item in stages[step.output_stage]} <= producers
    assert all(e.stage_status in ("completed", "initiated") for e in entries)


def test_search_finds_results_in_the_index_the_run_wrote(ingested: Ingested) -> None:
    assert (ingested.cwd / "stageline-data" / "docs-index.jsonl").is_file()
    done = run(shlex.split('python examples/docs_ingest.py search "replay"'), ingested.cwd)
    assert done.returncode == 0, done.stderr
    hits = re.findall(r"^(\d+)\. (\d\.\d+)\s+(\S+)", done.stdout, re.MULTILINE)
    assert [int(rank) for rank, _, _ in hits] == list(range(1, len(hits) + 1))
    assert 0 < len(hits) <= 5
    assert hits[0][2] == "examples/docs/replay.html"
    scores = [float(score) for _, score, _ in hits]
    assert scores == sorted(scores, reverse=True)


def readme_block(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", README, re.DOTALL)
    assert found, language
    return found.group(1)


def normalized(output: str) -> list[str]:
    """Lines without ids, dates and the widths that depend on them."""
    out = []
    for line in output.splitlines():
        line = re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<id>", line)
        line = re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "<time>", line)
        line = re.sub(r"─+", "─", line)
        line = " ".join(line.split())
        if line:
            out.append(line)
    return out


@pytest.mark.parametrize("source", ["examples/words.py", "the README's snippet"])
def test_the_readme_pipeline_prints_what_the_readme_shows(tmp_path: Path, db_url: str,
                                                          source: str) -> None:
    console = readme_block("console")
    command, _, shown = console.partition("\n")
    assert command.startswith("$ stageline run examples/words.py ")
    args = shlex.split(command[2:])
    if source != "examples/words.py":
        snippet = tmp_path / "words.py"
        snippet.write_text(readme_block("python"))
        args[2] = str(snippet)
    migrated(db_url).dispose()
    done = run([*args, "--db", db_url, "--storage", str(tmp_path / "data")], ROOT)
    assert done.returncode == 0, done.stderr
    assert normalized(done.stdout) == normalized(shown)
