"""`stageline run FILE`: one execution to its end, a summary, an exit code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli.conftest import (
    ENV,
    EXAMPLES,
    UNREACHABLE_DB,
    assert_fails_cleanly,
    stageline,
)

WORDS = EXAMPLES / "words.py"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

FAILING = textwrap.dedent('''
    from stageline import Pipeline

    pipeline = Pipeline("breaks")


    @pipeline.step(output="never")
    def explode(doc: dict[str, str]) -> None:
        raise ValueError("this step always fails")
''')


REVIEWED = textwrap.dedent('''
    from stageline import Pipeline

    pipeline = Pipeline("reviewed")


    @pipeline.step(output="upper", review=True)
    def shout(doc: dict[str, str]) -> str:
        return doc["text"].upper()


    @pipeline.step(output="length")
    def measure(text: str) -> int:
        return len(text)
''')


def step_rows(output: str) -> dict[str, list[str]]:
    """The summary's step table: step name -> its cells."""
    rows = [line.split() for line in output.splitlines()]
    return {cells[1]: cells for cells in rows if len(cells) >= 8 and cells[0].isdigit()}


def assert_completed_words(output: str, result: int) -> None:
    assert re.search(rf"^execution {UUID} of words$", output, re.MULTILINE), output
    rows = step_rows(output)
    assert [rows[s][3] for s in ("split", "count", "total")] == ["completed"] * 3, output
    assert re.search(r"│ status\s+completed\s+│", output), output
    assert re.search(rf"│ result\s+{result}\s+│", output), output


def test_run_prints_a_summary_and_exits_0(database: str, tmp_path: Path) -> None:
    done = stageline("run", WORDS, "--input", '{"text":"a b\\nc"}', "--db", database,
                     "--storage", tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert_completed_words(done.stdout, 3)
    assert step_rows(done.stdout)["count"][4] == "2"  # two lines counted
    assert "Traceback" not in done.stderr


def test_run_reads_input_from_a_file(database: str, tmp_path: Path) -> None:
    source = tmp_path / "input.json"
    source.write_text(json.dumps({"text": "one two three\nfour five\nsix\nseven"}))
    done = stageline("run", WORDS, "--pipeline", "words", "--tag", "nightly",
                     "--input", f"@{source}", "--db", database, "--storage", tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert_completed_words(done.stdout, 7)


def test_run_of_a_failing_pipeline_exits_1(database: str, tmp_path: Path) -> None:
    pipeline = tmp_path / "breaks.py"
    pipeline.write_text(FAILING)
    done = stageline("run", pipeline, "--input", "{}", "--db", database,
                     "--storage", tmp_path / "data")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert step_rows(done.stdout)["explode"][3] == "failed"
    assert re.search(r"│ status\s+failed\s+│", done.stdout), done.stdout
    assert "Traceback" not in done.stderr


def test_run_stops_at_a_review_gate(database: str, tmp_path: Path) -> None:
    pipeline = tmp_path / "reviewed.py"
    pipeline.write_text(REVIEWED)
    done = subprocess.run(
        [sys.executable, "-m", "stageline.cli", "run", str(pipeline), "--input",
         '{"text": "abc"}', "--db", database, "--storage", str(tmp_path / "data")],
        capture_output=True, text=True, env=ENV, timeout=15)
    assert done.returncode != 0, done.stdout  # it did not complete
    assert re.search(r"│ status\s+in_review\s+│", done.stdout), done.stdout
    assert step_rows(done.stdout)["shout"][3] == "in_review"


def bad_invocations(tmp: Path) -> dict[str, list[str | Path]]:
    """Each case: the arguments of `stageline run` after FILE's place, all wrong somehow."""
    (tmp / "no_pipeline.py").write_text("x = 1\n")
    (tmp / "broken.yaml").write_text("name: broken\nsteps: [\n")
    return {
        "missing-file": [tmp / "missing.py"],
        "file-without-pipeline": [tmp / "no_pipeline.py"],
        "invalid-yaml": [tmp / "broken.yaml"],
        "unknown-pipeline": [WORDS, "--pipeline", "nope"],
        "missing-input-file": [WORDS, "--input", f"@{tmp / 'missing.json'}"],
        "invalid-input-json": [WORDS, "--input", "{text: 1"],
    }


@pytest.mark.parametrize("case", ["missing-file", "file-without-pipeline", "invalid-yaml",
                                  "unknown-pipeline", "missing-input-file",
                                  "invalid-input-json"])
def test_run_with_bad_arguments_fails_in_one_line(database: str, tmp_path: Path,
                                                  case: str) -> None:
    args = bad_invocations(tmp_path)[case]
    done = stageline("run", *args, "--db", database, "--storage", tmp_path / "data")
    assert_fails_cleanly(done)


@pytest.mark.parametrize("command", [["run", str(WORDS)], ["db", "upgrade"]],
                         ids=["run", "db-upgrade"])
def test_unreachable_database_fails_in_one_line(command: list[str]) -> None:
    line = assert_fails_cleanly(stageline(*command, "--db", UNREACHABLE_DB))
    assert "database unavailable" in line


def test_run_a_yaml_config(database: str, tmp_path: Path) -> None:
    # The config writes its index relative to the working directory.
    shutil.copytree(EXAMPLES / "docs", tmp_path / "examples" / "docs")
    done = stageline("run", EXAMPLES / "docs_ingest.yaml", "--input",
                     '{"folder": "examples/docs"}', "--db", database,
                     "--storage", tmp_path / "data", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^execution {UUID} of docs-ingest-yaml$", done.stdout, re.MULTILINE)
    rows = step_rows(done.stdout)
    assert all(cells[3] == "completed" for cells in rows.values()), done.stdout
    assert len(rows) == 5
    index = tmp_path / "stageline-data" / "docs-index-yaml.jsonl"
    header, *chunks = (json.loads(line) for line in index.read_text().splitlines())
    assert header["count"] == len(chunks) > 0
    assert all(len(c["vector"]) == header["dim"] == 256 for c in chunks)
