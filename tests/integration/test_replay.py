"""Replay from a stage: the three sources, reuse by reference, cross-config, errors."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from engine_driver import Engine
from sqlalchemy import func, select

from stageline import Fatal, Pipeline
from stageline.domain.replay import ReplayRejected, ReplaySource
from stageline.runtime import Runtime
from stageline.store import executions, lineage, replay
from stageline.store.executions import NewExecution, TagInUse
from stageline.store.records import ExecutionRecord
from stageline.store.replay import MissingStoredItems, ParentRunning, ReplayRequest
from stageline.store.stages import read_stage
from stageline.store.tables import (
    executions as execution_rows,
)
from stageline.store.tables import (
    lineage_entries,
    messages,
    stage_items,
    stage_sources,
    step_runs,
)

CALLS: dict[str, int] = {}
BROKEN: set[int] = set()


def _count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


def build(name: str = "ingest", fixed: bool = False, scale: int = 1,
          segment_options: dict[str, Any] | None = None,
          embed_options: dict[str, Any] | None = None) -> Pipeline:
    p = Pipeline(name)

    @p.step(output="markdown")
    def to_markdown(doc: dict[str, Any]) -> dict[str, Any]:
        _count("to_markdown")
        return {"n": doc["n"]}

    @p.step(output="markdown_segmented", fan_out=True, **(segment_options or {}))
    def segment(md: dict[str, Any]) -> list[int]:
        _count("segment")
        return list(range(md["n"]))

    @p.step(output="embeddings", **(embed_options or {}))
    def embedding_generator(chunk: int) -> list[int]:
        _count("embedding_generator")
        if chunk in BROKEN and not fixed:
            raise Fatal(f"cannot embed chunk {chunk}")
        return [chunk * scale]

    @p.step(output="index", collect=True)
    def index(vectors: list[list[int]]) -> dict[str, int]:
        _count("index")
        return {"count": len(vectors), "sum": sum(v[0] for v in vectors)}

    return p


def run_to_end(runtime: Runtime, execution_id: UUID, timeout: float = 60) -> ExecutionRecord:
    """Work until the execution settles (the shared driver's loop)."""
    return Engine(runtime).drain(execution_id, timeout)


def start(runtime: Runtime, pipeline: Pipeline, n: int) -> ExecutionRecord:
    runtime.handlers.update(pipeline.handlers)
    runtime.register([pipeline])
    assert runtime.default_tenant is not None
    with runtime.db.write() as conn:
        record, _ = executions.create(conn, runtime.default_tenant, NewExecution(
            runtime.versions[pipeline.name], {"n": n}), runtime.blobs,
            runtime.settings.inline_limit)
    return run_to_end(runtime, record.id)


def do_replay(runtime: Runtime, parent: ExecutionRecord, req: ReplayRequest,
              child_pipeline: Pipeline | None = None, **kw: Any) -> replay.ReplayOutcome:
    assert runtime.default_tenant is not None
    if child_pipeline is not None:
        runtime.handlers.update(child_pipeline.handlers)
        runtime.register([child_pipeline])
    with runtime.db.write() as conn:
        parent_version = runtime.version(conn, runtime.default_tenant, parent.config_id)
        child = parent_version
        if child_pipeline is not None:
            child = runtime.versions[child_pipeline.name]
        return replay.start(conn, parent, parent_version.config, child, req, runtime.blobs,
                            runtime.settings.inline_limit, **kw)


def item_rows(runtime: Runtime, execution_id: UUID) -> int:
    with runtime.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(stage_items).where(
            stage_items.c.execution_id == execution_id)).scalar_one())


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    BROKEN.clear()


def test_lineage_replay_reruns_only_failed_items_after_a_fix(runtime: Runtime) -> None:
    BROKEN.update({3, 50, 99})
    parent = start(runtime, build(), 100)
    assert parent.status == "failed"
    CALLS.clear()
    fixed = build(fixed=True)  # same name: a new version of the pipeline
    outcome = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.LINEAGE, "markdown_segmented", "embedding_generator"), fixed)
    assert outcome.selection.count == 3 and outcome.child_id is not None
    child = run_to_end(runtime, outcome.child_id)
    assert child.status == "completed"
    assert CALLS == {"embedding_generator": 3, "index": 1}  # nothing before to_route ran
    assert child.result == {"count": 100, "sum": sum(range(100))}
    assert child.parent_execution_id == parent.id and child.root_execution_id == parent.id
    assert child.replay_source == "lineage"
    with runtime.db.read() as conn:
        seen = read_stage(conn, child.id, "embeddings")
        assert len(seen) == 100
        _, entries = lineage.for_execution(conn, child.id, 10000)
    replayed = [e for e in entries if e.route_id == "embedding_generator"]
    assert len(replayed) == 3
    assert all(e.replay_batch_id == child.replay_batch_id for e in replayed)
    assert all(e.parent_correlation_id for e in replayed)
    # reference, not copy: the child stored only the 3 new embeddings and the index
    assert item_rows(runtime, child.id) == 4


def test_storage_replay_recomputes_stage_from_parent_items(runtime: Runtime) -> None:
    parent = start(runtime, build(), 20)
    CALLS.clear()
    outcome = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator"),
        build(scale=10))
    assert outcome.child_id is not None
    child = run_to_end(runtime, outcome.child_id)
    assert child.status == "completed"
    assert CALLS == {"embedding_generator": 20, "index": 1}
    assert child.result == {"count": 20, "sum": 10 * sum(range(20))}
    with runtime.db.read() as conn:
        steps = executions.steps_of(conn, child.id)
    assert [s.status for s in steps] == ["skipped", "skipped", "completed", "completed"]
    assert steps[1].source_step_type == "segment"


def test_storage_replay_narrowed_by_from_path(runtime: Runtime) -> None:
    parent = start(runtime, build(), 20)
    outcome = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator",
        from_path="0/0001"))
    assert outcome.selection.count == 10  # keys 0/00010 .. 0/00019
    assert outcome.child_id is not None
    child = run_to_end(runtime, outcome.child_id)
    assert child.result == {"count": 20, "sum": sum(range(20))}


def test_manual_replay_uses_uploaded_items(runtime: Runtime) -> None:
    parent = start(runtime, build(), 5)
    upload = runtime.blobs.fs
    root = f"{runtime.settings.storage}/corrections/0"
    upload.makedirs(root, exist_ok=True)
    upload.pipe_file(f"{root}/00002.json", b"100")
    outcome = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.MANUAL, "markdown_segmented", "embedding_generator",
        from_path="corrections"))
    assert outcome.selection.count == 1 and outcome.child_id is not None
    child = run_to_end(runtime, outcome.child_id)
    assert child.result == {"count": 5, "sum": 0 + 1 + 100 + 3 + 4}


def test_replay_of_a_replay_chains_to_the_root(runtime: Runtime) -> None:
    BROKEN.update({1})
    parent = start(runtime, build(), 4)
    first = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator"))
    assert first.child_id is not None
    child = run_to_end(runtime, first.child_id)
    assert child.status == "failed"
    second = do_replay(runtime, child, ReplayRequest(
        ReplaySource.LINEAGE, "markdown_segmented", "embedding_generator"), build(fixed=True))
    assert second.selection.count == 1 and second.child_id is not None
    grandchild = run_to_end(runtime, second.child_id)
    assert grandchild.status == "completed"
    assert grandchild.root_execution_id == parent.id
    assert grandchild.result == {"count": 4, "sum": 6}


def test_dry_run_creates_nothing(runtime: Runtime) -> None:
    parent = start(runtime, build(), 10)
    outcome = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator"), dry_run=True)
    assert outcome.child_id is None and outcome.selection.count == 10
    assert outcome.plan.skip_steps == [0, 1] and outcome.plan.run_steps == [2, 3]
    assert runtime.default_tenant is not None
    with runtime.db.read() as conn:
        page = executions.list_page(conn, runtime.default_tenant,
                                    executions.ExecutionFilter(), 10, None)
    assert [e.id for e in page] == [parent.id]


@pytest.mark.parametrize(("from_stage", "to_route", "code"), [
    ("nope", "embedding_generator", "unknown_stage"),
    ("markdown_segmented", "nope", "unknown_route"),
    ("markdown", "embedding_generator", "route_does_not_consume_stage"),
])
def test_bad_stage_or_route_is_rejected(runtime: Runtime, from_stage: str, to_route: str,
                                        code: str) -> None:
    parent = start(runtime, build(), 3)
    with pytest.raises(ReplayRejected) as info:
        do_replay(runtime, parent, ReplayRequest(ReplaySource.STORAGE, from_stage, to_route))
    assert info.value.code == code


def test_manual_needs_from_path_and_tag_must_be_free(runtime: Runtime) -> None:
    parent = start(runtime, build(), 3)
    with pytest.raises(ReplayRejected):
        do_replay(runtime, parent, ReplayRequest(
            ReplaySource.MANUAL, "markdown_segmented", "embedding_generator"))
    do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator", tag="r1"))
    with pytest.raises(TagInUse):
        do_replay(runtime, parent, ReplayRequest(
            ReplaySource.STORAGE, "markdown_segmented", "embedding_generator", tag="r1"))


def test_missing_stored_bytes_fail_before_anything_is_created(runtime: Runtime) -> None:
    pipeline = Pipeline("big")

    @pipeline.step(output="parts", fan_out=True)
    def parts(doc: dict[str, Any]) -> list[str]:
        return ["x" * 5000 for _ in range(3)]  # over the test inline limit: in storage

    @pipeline.step(output="sizes")
    def size(part: str) -> int:
        return len(part)

    parent = start(runtime, pipeline, 0)
    with runtime.db.read() as conn:
        stored = read_stage(conn, parent.id, "parts")
    assert stored[0].storage_path is not None
    runtime.blobs.fs.rm(f"{runtime.settings.storage}/{stored[0].storage_path}")
    before = item_rows(runtime, parent.id)
    with pytest.raises(MissingStoredItems):
        do_replay(runtime, parent, ReplayRequest(ReplaySource.STORAGE, "parts", "size"))
    assert item_rows(runtime, parent.id) == before
    assert runtime.default_tenant is not None
    with runtime.db.read() as conn:
        assert len(executions.list_page(conn, runtime.default_tenant,
                                        executions.ExecutionFilter(), 10, None)) == 1


def test_running_parent_is_refused_unless_cancelled(runtime: Runtime) -> None:
    pipeline = build()
    runtime.handlers.update(pipeline.handlers)
    runtime.register([pipeline])
    assert runtime.default_tenant is not None
    with runtime.db.write() as conn:
        parent, _ = executions.create(conn, runtime.default_tenant, NewExecution(
            runtime.versions[pipeline.name], {"n": 3}), runtime.blobs, 1024)
    with pytest.raises(ParentRunning):
        do_replay(runtime, parent, ReplayRequest(ReplaySource.STORAGE, "input", "to_markdown"))
    outcome = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "input", "to_markdown"), cancel_running=True)
    assert outcome.child_id is not None
    child = run_to_end(runtime, outcome.child_id)
    assert child.status == "completed"


def test_dry_run_reports_what_would_refuse_the_replay(runtime: Runtime) -> None:
    parent = start(runtime, build(), 3)
    other = Pipeline("other")  # its to_route reads a stage the parent never wrote

    @other.step(output="cleaned")
    def clean(doc: dict[str, Any]) -> dict[str, Any]:
        return doc

    @other.step(input="cleaned", output="markdown_segmented2", name="embedding_generator")
    def embed(doc: dict[str, Any]) -> dict[str, Any]:
        return doc

    outcome = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "cleaned", "embedding_generator", tag="taken"), other,
        dry_run=True)
    assert outcome.child_id is None and outcome.plan is None
    assert [code for code, _ in outcome.findings] == ["unknown_stage"]
    do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator", tag="taken"))
    again = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator", tag="taken"),
        dry_run=True)
    assert [code for code, _ in again.findings] == ["tag_in_use"]
    assert again.plan is not None and again.selection.count == 3


# --- does the chosen config fit the parent's stages? -----------------------------------


def row_counts(runtime: Runtime) -> dict[str, int]:
    """Rows of every table a replay writes to."""
    with runtime.db.read() as conn:
        return {table.name: int(conn.execute(select(func.count()).select_from(table))
                                .scalar_one())
                for table in (execution_rows, step_runs, messages, lineage_entries,
                              stage_items, stage_sources)}


OBJECTS = {"input_schema": {"type": "object"}}


def test_the_sdk_declares_what_each_step_reads_and_writes() -> None:
    steps = build().config.steps
    assert [(s.input_schema, s.output_schema) for s in steps] == [
        ({"type": "object", "additionalProperties": True},
         {"type": "object", "additionalProperties": True}),
        ({"type": "object", "additionalProperties": True}, {"type": "integer"}),  # fan_out
        ({"type": "integer"}, {"type": "array", "items": {"type": "integer"}}),
        ({"type": "array", "items": {"type": "integer"}},  # collect: each item
         {"type": "object", "additionalProperties": {"type": "integer"}}),
    ]


@pytest.mark.parametrize(("from_stage", "to_route", "options", "message"), [
    ("markdown_segmented", "embedding_generator", {"embed_options": OBJECTS},
     "5 of 5 sampled items of stage 'markdown_segmented' do not fit the input_schema of "
     "route 'embedding_generator'; item '0/00000': 0 is not of type 'object'"),
    ("markdown", "segment", {"segment_options": {"input_schema": {  # a new required input
        "type": "object", "required": ["n", "language"]}}},
     "1 of 1 sampled items of stage 'markdown' do not fit the input_schema of route "
     "'segment'; item '0': 'language' is a required property"),
])
def test_dry_run_finds_items_that_do_not_fit_the_route(
        runtime: Runtime, from_stage: str, to_route: str, options: dict[str, Any],
        message: str) -> None:
    parent = start(runtime, build(), 5)
    outcome = do_replay(runtime, parent, ReplayRequest(ReplaySource.STORAGE, from_stage,
                                                       to_route), build(**options),
                        dry_run=True)
    assert outcome.findings == [("item_shape_mismatch", message)]
    assert outcome.plan is not None and outcome.child_id is None


def test_items_that_do_not_fit_refuse_the_replay_and_create_nothing(runtime: Runtime) -> None:
    BROKEN.update({1, 3})
    parent = start(runtime, build(), 5)
    assert parent.status == "failed"
    child = build(fixed=True, embed_options=OBJECTS)
    runtime.handlers.update(child.handlers)
    runtime.register([child])
    before = row_counts(runtime)
    for source, key in ((ReplaySource.STORAGE, "0/00000"), (ReplaySource.LINEAGE, "0/00001")):
        with pytest.raises(ReplayRejected) as info:
            do_replay(runtime, parent, ReplayRequest(source, "markdown_segmented",
                                                     "embedding_generator"), child)
        assert info.value.code == "item_shape_mismatch"
        assert f"item {key!r}: " in str(info.value)
    assert row_counts(runtime) == before


def test_manual_uploads_are_checked_too(runtime: Runtime) -> None:
    parent = start(runtime, build(), 3)
    root = f"{runtime.settings.storage}/fixes/0"
    runtime.blobs.fs.makedirs(root, exist_ok=True)
    runtime.blobs.fs.pipe_file(f"{root}/00001.json", b'"one"')
    before = row_counts(runtime)
    with pytest.raises(ReplayRejected) as info:
        do_replay(runtime, parent, ReplayRequest(
            ReplaySource.MANUAL, "markdown_segmented", "embedding_generator",
            from_path="fixes"))
    assert info.value.code == "item_shape_mismatch"
    assert "item '0/00001': 'one' is not of type 'integer'" in str(info.value)
    assert row_counts(runtime) == before


def test_only_a_bounded_sample_is_checked(runtime: Runtime) -> None:
    parent = start(runtime, build(), 30)  # keys 0/00000 .. 0/00029
    below_25 = build(embed_options={"input_schema": {"type": "integer", "maximum": 24}})
    outcome = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator"), below_25,
        dry_run=True)
    assert outcome.findings == []  # the first 20 by key fit; 25..29 are not read
    below_10 = build(embed_options={"input_schema": {"type": "integer", "maximum": 9}})
    outcome = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator"), below_10,
        dry_run=True)
    [(code, message)] = outcome.findings
    assert code == "item_shape_mismatch" and message.startswith("10 of 20 sampled items")


def test_items_that_fit_replay_as_before(runtime: Runtime) -> None:
    parent = start(runtime, build(), 8)
    CALLS.clear()
    positive = build(scale=2, embed_options={"input_schema": {"type": "integer",
                                                              "minimum": 0}})
    req = ReplayRequest(ReplaySource.STORAGE, "markdown_segmented", "embedding_generator")
    plan = do_replay(runtime, parent, req, positive, dry_run=True)
    assert plan.findings == [] and plan.warnings == []
    outcome = do_replay(runtime, parent, req, positive)
    assert outcome.child_id is not None
    child = run_to_end(runtime, outcome.child_id)
    assert child.status == "completed"
    assert child.result == {"count": 8, "sum": 2 * sum(range(8))}
    assert CALLS == {"embedding_generator": 8, "index": 1}


def test_a_reused_stage_of_another_declared_shape_is_a_warning(runtime: Runtime) -> None:
    parent = start(runtime, build(), 4)
    reshaped = build(segment_options={"output_schema": {"type": "integer", "minimum": 0}})
    req = ReplayRequest(ReplaySource.STORAGE, "markdown_segmented", "embedding_generator")
    plan = do_replay(runtime, parent, req, reshaped, dry_run=True)
    assert plan.findings == []  # the replay would run
    assert plan.warnings == [(
        "stage_shape_changed", "stage 'markdown_segmented' is reused from the parent: the "
        "parent's step 'segment' declared another output_schema than step 'segment' of the "
        "chosen config")]
    outcome = do_replay(runtime, parent, req, reshaped)
    assert outcome.child_id is not None
    assert run_to_end(runtime, outcome.child_id).status == "completed"


def test_a_stage_the_chosen_config_dropped_is_a_warning(runtime: Runtime) -> None:
    full = build()
    parent = start(runtime, full, 3)
    lean = Pipeline.from_config(full.config.model_copy(
        update={"steps": full.config.steps[:3]}))
    lean.handlers = dict(full.handlers)
    plan = do_replay(runtime, parent, ReplayRequest(
        ReplaySource.STORAGE, "markdown_segmented", "embedding_generator"), lean,
        dry_run=True)
    assert plan.findings == []
    assert plan.warnings == [(
        "stage_removed", "stage 'index' (written by the parent's step 'index') is not a "
        "stage of the chosen config: the replay will not have it")]
