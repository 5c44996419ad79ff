"""The store functions behind the lineage and monitoring endpoints, on a real
database: filters, keyset pages, attempts, chains across steps and executions,
per-step statistics and stage counts, each scoped to one tenant."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from typing import Any
from uuid import UUID

import pydantic_core
import pytest
from sqlalchemy import event, select

from stageline import Pipeline, StepContext
from stageline.api.views import lineage_entry, lineage_entry_fields
from stageline.domain.status import EXECUTION_TERMINAL, ExecutionStatus, StageStatus
from stageline.engine.worker import Worker
from stageline.runtime import Runtime
from stageline.schemas.lineage import ExecutionLineageResponse, LineageEntryResponse
from stageline.store import executions, lineage, stats, tenants
from stageline.store.executions import NewExecution
from stageline.store.ids import new_id
from stageline.store.lineage import MAX_CHAIN_DEPTH, LineageFilter
from stageline.store.records import ExecutionRecord, LineageRecord
from stageline.store.tables import lineage_entries
from stageline.store.types import utcnow

FAST = {"initial": 0.01, "maximum": 0.02}
CHUNKS = 3


class FlakyEmbed:
    """Fails the first attempt of each document's chunk 1, then succeeds."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def embed(self, chunk: dict[str, Any]) -> dict[str, Any]:
        key = (chunk["source"], chunk["i"])
        with self._lock:
            first = key not in self.seen
            self.seen.add(key)
        if chunk["i"] == 1 and first:
            raise RuntimeError("embedding service hiccup")
        return {"source": chunk["source"], "i": chunk["i"], "vector": [chunk["i"]]}


def fetch(request: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    ctx.metadata["source"] = request["source"]
    return request


def segment(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"source": document["source"], "i": i} for i in range(document["chunks"])]


def index(vectors: list[dict[str, Any]]) -> int:
    return len(vectors)


def docs_pipeline() -> Pipeline:
    p = Pipeline("docs")
    p.step(output="document")(fetch)
    p.step(output="chunks", fan_out=True)(segment)
    p.add_step("embed", output="vectors", adapters=[FlakyEmbed().embed], retries=2,
               backoff=FAST)
    p.step(output="index", collect=True)(index)
    return p


@pytest.fixture
def docs(runtime: Runtime) -> Iterator[Runtime]:
    pipeline = docs_pipeline()
    runtime.handlers.update(pipeline.handlers)
    runtime.register([pipeline])
    yield runtime


@pytest.fixture
def tenant(runtime: Runtime) -> UUID:
    assert runtime.default_tenant is not None
    return runtime.default_tenant


@pytest.fixture
def other_tenant(runtime: Runtime) -> UUID:
    with runtime.db.write() as conn:
        return tenants.ensure_tenant(conn, "other")


def start(runtime: Runtime, source: str, chunks: int = CHUNKS) -> ExecutionRecord:
    assert runtime.default_tenant is not None
    new = NewExecution(runtime.versions["docs"], {"source": source, "chunks": chunks})
    with runtime.db.write() as conn:
        record, _ = executions.create(conn, runtime.default_tenant, new, runtime.blobs,
                                      runtime.settings.inline_limit)
    return record


def drain(runtime: Runtime, *records: ExecutionRecord) -> None:
    """Work until every execution is terminal, waiting out retry back-offs."""
    worker: Worker = runtime.worker()
    deadline = time.monotonic() + 30
    try:
        while not all(_status(runtime, r.id) in EXECUTION_TERMINAL for r in records):
            assert time.monotonic() < deadline, "executions did not finish"
            worker.run_until_idle()
            time.sleep(0.01)
    finally:
        worker.stop()


def _status(runtime: Runtime, execution_id: UUID) -> ExecutionStatus:
    assert runtime.default_tenant is not None
    with runtime.db.read() as conn:
        return ExecutionStatus(executions.get(conn, runtime.default_tenant, execution_id).status)


def page(runtime: Runtime, tenant: UUID, flt: LineageFilter,
         limit: int = 1000) -> list[LineageRecord]:
    with runtime.db.read() as conn:
        return lineage.list_page(conn, tenant, flt, limit, None)


def all_entries(runtime: Runtime, execution_id: UUID) -> list[LineageRecord]:
    with runtime.db.read() as conn:
        return lineage.for_execution(conn, execution_id, 10_000)[1]


@pytest.fixture
def two_runs(docs: Runtime) -> tuple[ExecutionRecord, ExecutionRecord]:
    first, second = start(docs, "a.pdf"), start(docs, "b.pdf")
    drain(docs, first, second)
    return first, second


# -- list_page -----------------------------------------------------------------


def test_filters_narrow_to_matching_entries(docs: Runtime, tenant: UUID,
                                           two_runs: tuple[ExecutionRecord, ...]) -> None:
    first, _ = two_runs
    mine = page(docs, tenant, LineageFilter(execution_id=first.id))
    # input + fetch + segment + 3 chunks (one retried) + collect
    assert len(mine) == 1 + 1 + 1 + CHUNKS + 1 + 1
    assert {e.execution_id for e in mine} == {first.id}

    embeds = page(docs, tenant, LineageFilter(execution_id=first.id, route_id="embed"))
    assert len(embeds) == CHUNKS + 1
    failed = page(docs, tenant, LineageFilter(execution_id=first.id,
                                              stage_status=(StageStatus.FAILED,)))
    assert [(e.route_id, e.item_key) for e in failed] == [("embed", "0/00001")]
    vectors = page(docs, tenant, LineageFilter(stage_name="vectors",
                                               stage_status=(StageStatus.COMPLETED,)))
    assert len(vectors) == 2 * CHUNKS


def test_roots_only_gives_the_input_entries(docs: Runtime, tenant: UUID,
                                            two_runs: tuple[ExecutionRecord, ...]) -> None:
    roots = page(docs, tenant, LineageFilter(roots_only=True))
    assert sorted(e.execution_id for e in roots) == sorted(r.id for r in two_runs)
    assert {(e.stage_status, e.stage_name, e.parent_correlation_id) for e in roots} == {
        (StageStatus.INITIATED, "input", None)}


def test_meta_filter_matches_handler_metadata(docs: Runtime, tenant: UUID,
                                              two_runs: tuple[ExecutionRecord, ...]) -> None:
    first, second = two_runs
    found = page(docs, tenant, LineageFilter(meta=(("source", "b.pdf"),)))
    assert [(e.execution_id, e.route_id) for e in found] == [(second.id, "fetch")]
    both = LineageFilter(meta=(("source", "a.pdf"), ("attempt", "1")))
    assert [e.execution_id for e in page(docs, tenant, both)] == [first.id]
    assert page(docs, tenant, LineageFilter(meta=(("source", "c.pdf"),))) == []
    assert page(docs, tenant, LineageFilter(meta=(("nothing.here", "x"),))) == []


def test_started_window_is_half_open(docs: Runtime, tenant: UUID,
                                     two_runs: tuple[ExecutionRecord, ...]) -> None:
    entries = page(docs, tenant, LineageFilter())
    middle = entries[len(entries) // 2].started_at
    before = page(docs, tenant, LineageFilter(started_before=middle))
    after = page(docs, tenant, LineageFilter(started_after=middle))
    assert before + after == entries
    assert all(e.started_at < middle for e in before)
    later = middle + timedelta(days=1)
    assert page(docs, tenant, LineageFilter(started_after=later)) == []


def test_pages_cover_every_entry_once_in_order(docs: Runtime, tenant: UUID,
                                               two_runs: tuple[ExecutionRecord, ...]) -> None:
    everything = page(docs, tenant, LineageFilter())
    seen: list[LineageRecord] = []
    after = None
    while True:
        with docs.db.read() as conn:
            rows = lineage.list_page(conn, tenant, LineageFilter(), 3, after)
        seen += rows
        if len(rows) < 3:
            break
        after = (rows[-1].started_at, rows[-1].id)
    assert [e.id for e in seen] == [e.id for e in everything]
    assert len({e.id for e in seen}) == len(everything) == 2 * 8
    assert [(e.started_at, e.id) for e in seen] == sorted((e.started_at, e.id) for e in seen)


def test_another_tenant_sees_no_entries(docs: Runtime, other_tenant: UUID,
                                        two_runs: tuple[ExecutionRecord, ...]) -> None:
    first, _ = two_runs
    assert page(docs, other_tenant, LineageFilter()) == []
    assert page(docs, other_tenant, LineageFilter(execution_id=first.id)) == []
    entry = all_entries(docs, first.id)[0]
    with docs.db.read() as conn:
        assert lineage.attempts(conn, other_tenant, entry.correlation_id, 10) == []
        assert lineage.chain(conn, other_tenant, entry.correlation_id, 10) is None


# -- attempts and chain ---------------------------------------------------------


def test_attempts_of_a_retried_message(docs: Runtime, tenant: UUID,
                                       two_runs: tuple[ExecutionRecord, ...]) -> None:
    first, _ = two_runs
    flaky = next(e for e in all_entries(docs, first.id)
                 if e.route_id == "embed" and e.item_key == "0/00001")
    with docs.db.read() as conn:
        tries = lineage.attempts(conn, tenant, flaky.correlation_id, 10)
        assert lineage.attempts(conn, tenant, "no-such-id", 10) == []
    assert [(e.attempt, e.stage_status) for e in tries] == [
        (1, StageStatus.FAILED), (2, StageStatus.COMPLETED)]


def test_chain_of_a_chunk_through_a_fan_out(docs: Runtime, tenant: UUID,
                                            two_runs: tuple[ExecutionRecord, ...]) -> None:
    first, _ = two_runs
    entries = all_entries(docs, first.id)
    chunk = next(e for e in entries if e.route_id == "embed" and e.item_key == "0/00001")
    with docs.db.read() as conn:
        found = lineage.chain(conn, tenant, chunk.correlation_id, 100)
    assert found is not None and not found.truncated
    assert [(e.stage_name, e.stage_status) for e in found.ancestors] == [
        ("input", StageStatus.INITIATED), ("document", StageStatus.COMPLETED),
        ("chunks", StageStatus.COMPLETED)]
    assert [e.attempt for e in found.entries] == [1, 2]
    assert found.descendants == []  # the collect step has no single parent


def test_chain_of_the_root_reaches_every_chunk(docs: Runtime, tenant: UUID,
                                               two_runs: tuple[ExecutionRecord, ...]) -> None:
    first, _ = two_runs
    root = page(docs, tenant, LineageFilter(execution_id=first.id, roots_only=True))[0]
    with docs.db.read() as conn:
        found = lineage.chain(conn, tenant, root.correlation_id, 100)
        cut = lineage.chain(conn, tenant, root.correlation_id, 2)
    assert found is not None and cut is not None
    assert found.ancestors == []
    assert [e.route_id for e in found.descendants] == [
        "fetch", "segment", *["embed"] * (CHUNKS + 1)]
    # Every descendant is the child of an entry listed before it.
    known = {root.correlation_id}
    for entry in found.descendants:
        assert entry.parent_correlation_id in known
        known.add(entry.correlation_id)
    assert cut.truncated and cut.descendants == found.descendants[:2]


def _entry(conn: Any, tenant: UUID, execution_id: UUID, correlation_id: str,
           parent: str | None, stage: str, offset: int) -> None:
    conn.execute(lineage_entries.insert().values(
        id=new_id(), tenant_id=tenant, correlation_id=correlation_id,
        parent_correlation_id=parent, execution_id=execution_id, route_id=stage,
        stage_name=stage, stage_status=StageStatus.COMPLETED, attempt=1,
        started_at=utcnow() + timedelta(milliseconds=offset)))


def test_chain_crosses_into_replays(runtime: Runtime, tenant: UUID) -> None:
    """A replay's messages name the replayed execution's item as their parent."""
    parent_run, child_run = new_id(), new_id()
    with runtime.db.write() as conn:
        _entry(conn, tenant, parent_run, "root", None, "input", 0)
        _entry(conn, tenant, parent_run, "doc", "root", "document", 1)
        _entry(conn, tenant, parent_run, "chunk", "doc", "chunks", 2)
        _entry(conn, tenant, child_run, "chunk-replayed", "chunk", "vectors", 3)
        _entry(conn, tenant, child_run, "chunk-replayed-2", "chunk-replayed", "index", 4)
    with runtime.db.read() as conn:
        found = lineage.chain(conn, tenant, "chunk", 100)
    assert found is not None
    assert [e.correlation_id for e in found.ancestors] == ["root", "doc"]
    assert [(e.correlation_id, e.execution_id) for e in found.descendants] == [
        ("chunk-replayed", child_run), ("chunk-replayed-2", child_run)]


def test_chain_stops_at_the_tenant_boundary(runtime: Runtime, tenant: UUID,
                                            other_tenant: UUID) -> None:
    run = new_id()
    with runtime.db.write() as conn:
        _entry(conn, other_tenant, run, "theirs", None, "input", 0)
        _entry(conn, tenant, run, "mine", "theirs", "document", 1)
        _entry(conn, other_tenant, run, "their-child", "mine", "chunks", 2)
    with runtime.db.read() as conn:
        found = lineage.chain(conn, tenant, "mine", 100)
    assert found is not None
    assert (found.ancestors, found.descendants) == ([], [])


def _linear_chain(runtime: Runtime, tenant: UUID, depth: int) -> None:
    """Entries c0 <- c1 <- ... <- c{depth-1}, each the parent of the next."""
    run = new_id()
    with runtime.db.write() as conn:
        for i in range(depth):
            _entry(conn, tenant, run, f"c{i}", f"c{i - 1}" if i else None, "s", i)


def test_chain_depth_is_bounded(runtime: Runtime, tenant: UUID) -> None:
    _linear_chain(runtime, tenant, MAX_CHAIN_DEPTH + 5)
    with runtime.db.read() as conn:
        found = lineage.chain(conn, tenant, "c0", 10_000)
    assert found is not None and found.truncated
    assert len(found.descendants) == MAX_CHAIN_DEPTH
    assert found.descendants[0].correlation_id == "c1"


def test_ancestors_depth_is_bounded(runtime: Runtime, tenant: UUID) -> None:
    depth = MAX_CHAIN_DEPTH + 5
    _linear_chain(runtime, tenant, depth)
    with runtime.db.read() as conn:
        found = lineage.chain(conn, tenant, f"c{depth - 1}", 10_000)
        whole = lineage.chain(conn, tenant, f"c{MAX_CHAIN_DEPTH - 1}", 10_000)
    assert found is not None and found.truncated
    assert [e.correlation_id for e in found.ancestors] == [
        f"c{i}" for i in range(depth - 1 - MAX_CHAIN_DEPTH, depth - 1)]
    assert whole is not None and not whole.truncated  # up to the root, c0, and no further
    assert [e.correlation_id for e in whole.ancestors] == [
        f"c{i}" for i in range(MAX_CHAIN_DEPTH - 1)]


@contextmanager
def _recording(conn: Any) -> Iterator[list[tuple[str, Any]]]:
    """The statements `conn` runs inside the block, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", record)


def test_chain_lookups_stay_on_the_indexes(runtime: Runtime, tenant: UUID) -> None:
    """With statistics, SQLite may put a Bloom filter (a pass over the whole
    table) before the lookups of a walk; each lookup must stay an index search."""
    if not runtime.db.is_sqlite:
        pytest.skip("SQLite's query planner")
    run = new_id()
    with runtime.db.write() as conn:
        for i in range(20):
            _entry(conn, tenant, run, f"c{i}", f"c{i - 1}" if i else None, "s", i)
        conn.exec_driver_sql("ANALYZE")
    with runtime.db.read() as conn:
        with _recording(conn) as statements:
            found = lineage.chain(conn, tenant, "c10", 100)
        plans = [[row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
                 for sql, params in statements]
    assert found is not None and (len(found.ancestors), len(found.descendants)) == (10, 9)
    assert len(plans) == 3  # the attempts, the way up, the way down
    for plan in plans:
        assert not [step for step in plan if "BLOOM" in step or step.startswith("SCAN l")], plan


# -- records and their JSON -------------------------------------------------------


def test_records_read_as_the_column_types_read_them(
        docs: Runtime, tenant: UUID, two_runs: tuple[ExecutionRecord, ...]) -> None:
    """Each reader decodes ids and times itself; they must come out as the
    columns' types make them: UUIDs, aware datetimes in UTC, JSON as values."""
    first, _ = two_runs
    with docs.db.write() as conn:
        _odd_entries(conn, tenant, first.id)
    with docs.db.read() as conn:
        typed = [LineageRecord.from_row(r) for r in conn.execute(
            select(lineage_entries).where(lineage_entries.c.execution_id == first.id)
            .order_by(lineage_entries.c.started_at, lineage_entries.c.id))]
        total, mine = lineage.for_execution(conn, first.id, 1000)
        cut = lineage.for_execution(conn, first.id, 2)
        unknown = lineage.for_execution(conn, new_id(), 2)
        listed = lineage.list_page(conn, tenant, LineageFilter(execution_id=first.id), 1000,
                                   None)
        down = lineage.chain(conn, tenant, typed[0].correlation_id, 1000)
        up = lineage.chain(conn, tenant, "odd-1", 1000)
    assert total == len(typed) > 8
    assert mine == listed == typed
    assert cut == (total, typed[:2]) and unknown == (0, [])
    for record in mine:
        assert all(isinstance(v, UUID) for v in (record.id, record.tenant_id,
                                                  record.execution_id))
        assert record.started_at.tzinfo is UTC
        assert record.completed_at is None or record.completed_at.tzinfo is UTC
    assert down is not None and up is not None
    along = down.entries + down.descendants + up.ancestors + up.entries
    by_id = {e.id: e for e in typed}
    assert [by_id[e.id] for e in along] == along
    assert up.ancestors == [typed[0]] and "odd-1" in {e.correlation_id for e in down.descendants}


def _odd_entries(conn: Any, tenant: UUID, execution_id: UUID) -> None:
    """Entries with the values a worker rarely writes, below the execution's input."""
    root = conn.execute(select(lineage_entries.c.correlation_id).where(
        lineage_entries.c.execution_id == execution_id,
        lineage_entries.c.stage_status == StageStatus.INITIATED)).scalar_one()
    at = utcnow().replace(microsecond=0) + timedelta(days=1)
    base = {"tenant_id": tenant, "execution_id": execution_id, "route_id": "odd",
            "stage_name": "odd", "stage_status": StageStatus.FAILED, "attempt": 2}
    conn.execute(lineage_entries.insert(), [
        {**base, "id": new_id(), "correlation_id": "odd-0", "parent_correlation_id": "elsewhere",
         "started_at": at, "completed_at": None, "meta": None, "error_info": None},
        {**base, "id": new_id(), "correlation_id": "odd-1", "parent_correlation_id": root,
         "replay_batch_id": "batch-1", "adapter_name": "m:f", "adapter_index": 3,
         "stage_input_hash": "sha256:00", "item_key": "0/00007",
         "started_at": at + timedelta(microseconds=1),
         "completed_at": at + timedelta(hours=1, microseconds=999_999),
         "duration_ms": 3_600_000.000001,
         "meta": {"é": "ünï", "nested": {"list": [1, 2.5, None, True]}, "attempt": 9},
         "error_info": {"type": "Fatal", "message": "x" * 300, "retryable": False}},
    ])


def test_entry_values_give_the_models_json(
        docs: Runtime, tenant: UUID, two_runs: tuple[ExecutionRecord, ...]) -> None:
    """The lineage routes serialise `lineage_entry_fields` without building models:
    the JSON must be the model's, and a trusted model the validated one."""
    first, _ = two_runs
    with docs.db.write() as conn:
        _odd_entries(conn, tenant, first.id)
    with docs.db.read() as conn:
        _, records = lineage.for_execution(conn, first.id, 1000)
    for record in records:
        values = lineage_entry_fields(record)
        validated = LineageEntryResponse.model_validate(values)
        assert LineageEntryResponse.trusted(lineage_entry_fields(record)) == validated
        assert lineage_entry(record) == validated
        assert lineage_entry(record).model_fields_set == validated.model_fields_set
        assert pydantic_core.to_json(values) == validated.model_dump_json().encode()
    page = ExecutionLineageResponse.model_construct(
        total=len(records), execution_id=first.id,
        entries=[lineage_entry(r) for r in records])
    assert ExecutionLineageResponse.model_validate_json(page.model_dump_json()) == page


# -- stats ----------------------------------------------------------------------


def test_step_stats_count_attempts_and_time(docs: Runtime,
                                            two_runs: tuple[ExecutionRecord, ...]) -> None:
    first, _ = two_runs
    with docs.db.read() as conn:
        steps = stats.step_stats(conn, first.id)
    assert [s.step.step_type for s in steps] == ["fetch", "segment", "embed", "index"]
    embed = steps[2]
    assert embed.summary.counts == {"pending": 0, "initiated": 0, "processing": 0,
                                    "completed": CHUNKS, "failed": 1, "cancelled": 0}
    assert [(a.adapter_index, a.summary.counts["completed"], a.summary.counts["failed"])
            for a in embed.adapters] == [(0, CHUNKS, 1)]
    durations = sorted(e.duration_ms or 0.0 for e in all_entries(docs, first.id)
                       if e.route_id == "embed" and e.stage_status == StageStatus.COMPLETED)
    assert embed.summary.p95_duration_ms == durations[-1]  # nearest rank of 3 values
    assert embed.summary.avg_duration_ms == pytest.approx(sum(durations) / CHUNKS)
    assert embed.first_started_at is not None and embed.last_completed_at is not None
    assert embed.span_seconds is not None and embed.span_seconds > 0
    assert embed.summary.completed_per_second == pytest.approx(CHUNKS / embed.span_seconds)


def test_step_stats_of_a_step_not_run_yet(docs: Runtime) -> None:
    record = start(docs, "c.pdf")
    with docs.db.read() as conn:
        steps = stats.step_stats(conn, record.id)
    assert [s.summary.counts["completed"] for s in steps] == [0, 0, 0, 0]
    assert {(s.span_seconds, s.summary.p95_duration_ms, s.summary.completed_per_second)
            for s in steps} == {(None, None, None)}


@pytest.mark.parametrize(("values", "expected"), [
    ([], None), ([7.0], 7.0), ([float(i) for i in range(1, 101)], 95.0),
    ([float(i) for i in range(20, 0, -1)], 19.0),
])
def test_percentile_is_nearest_rank(values: list[float], expected: float | None) -> None:
    assert stats.percentile(values, 95) == expected


def test_stage_counts(docs: Runtime, two_runs: tuple[ExecutionRecord, ...]) -> None:
    first, _ = two_runs
    with docs.db.read() as conn:
        counts = stats.stage_counts(conn, first.id)
    assert counts == {"input": 1, "document": 1, "chunks": CHUNKS, "vectors": CHUNKS,
                      "index": 1}
