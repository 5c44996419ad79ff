"""What a step produced, read back through `store.results` (pages of a stage,
one item, the last complete output, the items that failed for good), and
sources in `store.sources`, on the suite's database."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from engine_driver import Engine

from stageline import Fatal, Pipeline
from stageline.domain.replay import ReplaySource
from stageline.domain.status import ExecutionStatus, StepStatus
from stageline.settings import Settings
from stageline.store import executions, replay, results, sources, tenants
from stageline.store.executions import UnknownExecution
from stageline.store.pipelines import UnknownPipeline
from stageline.store.records import StepRunRecord
from stageline.store.replay import ReplayRequest

FAST = {"initial": 0.01, "maximum": 0.02}
BIG = "b" * 3000  # over the tests' inline limit of 1024 bytes


def split(doc: dict[str, Any]) -> list[Any]:
    return list(doc["parts"])


def check(part: Any) -> Any:
    if part == "fatal":
        raise Fatal("refused")
    if part == "flaky":
        raise RuntimeError("always broken")
    return part


def draft(doc: dict[str, Any]) -> dict[str, Any]:
    return {"draft": doc["topic"]}


def parts() -> Pipeline:
    p = Pipeline("parts")
    p.step(output="pieces", fan_out=True)(split)
    p.step(output="checked", retries=1, backoff=FAST)(check)
    return p


def reviewed() -> Pipeline:
    p = Pipeline("reviewed_results")
    p.step(output="drafts", review=True)(draft)
    p.step(output="final")(check)
    return p


def _steps(engine: Engine, execution_id: UUID) -> list[StepRunRecord]:
    with engine.runtime.db.read() as conn:
        return executions.steps_of(conn, execution_id)


def test_pages_of_a_stage_follow_item_keys(engine: Engine) -> None:
    engine.install(parts())
    run = engine.drain(engine.start("parts", {"parts": [f"p{i}" for i in range(5)]}).id)
    step = _steps(engine, run.id)[1]

    with engine.runtime.db.read() as conn:
        first, more = results.item_page(conn, run.id, step, None, 2)
        second, more_after = results.item_page(conn, run.id, step, first[-1].key, 2)
        last, done = results.item_page(conn, run.id, step, second[-1].key, 2)
        one = results.one_item(conn, run.id, step, "0/00003")
        with pytest.raises(results.UnknownItem):
            results.one_item(conn, run.id, step, "0/99999")
        with pytest.raises(results.UnknownStep):
            results.step_of(conn, run.id, 2)

    assert [i.key for i in first + second + last] == [f"0/{i:05d}" for i in range(5)]
    assert (more, more_after, done) == (True, True, False)
    assert one.load(engine.runtime.blobs) == "p3"


def test_lookup_key_appears_with_the_first_item_and_names_the_storage_prefix(
        engine: Engine, settings: Settings) -> None:
    engine.install(parts())
    record = engine.start("parts", {"parts": ["small", BIG]})
    before = _steps(engine, record.id)
    assert [results.lookup_key(record.id, s) for s in before] == [None, None]

    run = engine.drain(record.id)

    steps = _steps(engine, run.id)
    assert [results.lookup_key(run.id, s) for s in steps] == [
        f"{run.id}/pieces", f"{run.id}/checked"]
    big = engine.items(run.id, "checked")[1]
    assert big.storage_path is not None
    assert big.storage_path.startswith(f"{results.lookup_key(run.id, steps[1])}/")


def test_a_replay_reads_its_parents_stages_by_reference(engine: Engine) -> None:
    engine.install(parts())
    parent = engine.drain(engine.start("parts", {"parts": ["a", "fatal", "c"]}).id)
    version = engine.runtime.versions["parts"]
    with engine.runtime.db.write() as conn:
        outcome = replay.start(conn, parent, version.config, version,
                               ReplayRequest(ReplaySource.LINEAGE, "pieces", "check"),
                               engine.runtime.blobs, engine.runtime.settings.inline_limit)
    assert outcome.child_id is not None
    child = engine.drain(outcome.child_id)  # "fatal" is refused again
    copied, rerun = _steps(engine, child.id)

    with engine.runtime.db.read() as conn:
        pieces, _ = results.item_page(conn, child.id, copied, None, 10)
        checked, more = results.item_page(conn, child.id, rerun, None, 10)
        one = results.one_item(conn, child.id, rerun, "0/00002")
        counted = results.count_stage(conn, child.id, "checked")

    assert (copied.status, copied.source_execution_id) == (StepStatus.SKIPPED, parent.id)
    assert results.has_output(copied) and copied.completed == 0
    assert results.lookup_key(child.id, copied) == f"{parent.id}/pieces"
    blobs = engine.runtime.blobs
    assert [i.load(blobs) for i in pieces] == ["a", "fatal", "c"]
    # the parent's completed items fill the child's stage: nothing was copied
    assert [(i.execution_id, i.key, i.load(blobs)) for i in checked] == [
        (parent.id, "0/00000", "a"), (parent.id, "0/00002", "c")]
    assert (more, one.load(blobs), counted) == (False, "c", 2)


def test_failures_are_the_last_attempts_of_items_that_failed_for_good(engine: Engine) -> None:
    engine.install(parts())
    run = engine.drain(engine.start("parts", {"parts": ["ok", "fatal", "flaky"]}).id)
    assert run.status == ExecutionStatus.COMPLETED_WITH_ERRORS

    with engine.runtime.db.read() as conn:
        outputs = results.outputs_of(conn, run.id, items=10, failures=10)
        capped = results.final_failures(conn, run.id, 1, 1)

    assert list(outputs.failures) == [1]
    failed = outputs.failures[1]
    assert [(f.item_key, f.attempt, (f.error_info or {})["type"]) for f in failed] == [
        ("0/00001", 1, "Fatal"), ("0/00002", 2, "RuntimeError")]  # flaky was retried once
    assert [f.item_key for f in capped] == ["0/00001"]
    assert outputs.last is not None  # the failed step's partial output is not "complete"
    assert (outputs.last.step.step_type, outputs.last.total) == ("split", 3)


def test_the_last_output_is_the_latest_complete_stage(engine: Engine) -> None:
    engine.install(reviewed())
    record = engine.start("reviewed_results", {"topic": "rivers"})
    with engine.runtime.db.read() as conn:
        assert results.outputs_of(conn, record.id, items=5, failures=5).last is None

    waiting = engine.drain(record.id)

    assert waiting.status == ExecutionStatus.IN_REVIEW
    with engine.runtime.db.read() as conn:
        last = results.outputs_of(conn, record.id, items=5, failures=5).last
    assert last is not None and last.step.status == StepStatus.IN_REVIEW
    assert [i.load(engine.runtime.blobs) for i in last.items] == [{"draft": "rivers"}]


def test_many_items_are_counted_beyond_the_ones_read(engine: Engine) -> None:
    engine.install(parts())
    run = engine.drain(engine.start("parts", {"parts": [f"p{i}" for i in range(7)]}).id)

    with engine.runtime.db.read() as conn:
        last = results.last_output(conn, run.id, executions.steps_of(conn, run.id), 3)

    assert last is not None
    assert (last.step.step_type, len(last.items), last.total) == ("check", 3, 7)


def test_sources_belong_to_one_tenant(engine: Engine) -> None:
    engine.install(parts())
    with engine.runtime.db.write() as conn:
        other = tenants.ensure_tenant(conn, "other")
        created = sources.create(conn, engine.tenant, "inbox", "parts")
        sources.create(conn, engine.tenant, "archive", "parts")
        with pytest.raises(sources.SourceExists):
            sources.create(conn, engine.tenant, "inbox", "parts")
        with pytest.raises(UnknownPipeline):
            sources.create(conn, other, "inbox", "parts")  # the pipeline is not theirs

    with engine.runtime.db.read() as conn:
        assert sources.get(conn, engine.tenant, "inbox") == created
        assert [s.key for s in sources.list_page(conn, engine.tenant, None, 10)] == [
            "archive", "inbox"]
        assert [s.key for s in sources.list_page(conn, engine.tenant, "archive", 10)] == [
            "inbox"]
        assert sources.list_page(conn, other, None, 10) == []
        with pytest.raises(sources.UnknownSource):
            sources.get(conn, other, "inbox")
    assert (created.pipeline, created.pipeline_id) == (
        "parts", engine.runtime.versions["parts"].pipeline_id)


def test_executions_started_through_a_source_are_found_only_there(engine: Engine) -> None:
    engine.install(parts())
    blobs, limit = engine.runtime.blobs, engine.runtime.settings.inline_limit
    with engine.runtime.db.write() as conn:
        inbox = sources.create(conn, engine.tenant, "inbox", "parts")
        archive = sources.create(conn, engine.tenant, "archive", "parts")
        record = sources.start_execution(conn, engine.tenant, inbox, {"parts": ["x"]}, blobs,
                                         limit)
    direct = engine.start("parts", {"parts": ["y"]}, tag="direct")

    assert (record.source_key, record.config_id) == (
        "inbox", engine.runtime.versions["parts"].config_id)
    assert engine.drain(record.id).status == ExecutionStatus.COMPLETED
    with engine.runtime.db.read() as conn:
        assert sources.execution_of(conn, engine.tenant, inbox, str(record.id)) == (
            engine.execution(record.id))
        for source, ref in [(archive, str(record.id)), (inbox, "direct"),
                            (inbox, str(direct.id))]:
            with pytest.raises(UnknownExecution):
                sources.execution_of(conn, engine.tenant, source, ref)
