"""Where stage items live (inline or in storage), idempotent starts, tags, and
executions pinned to the pipeline version they started on."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_driver import Engine

from stageline import Pipeline
from stageline.domain.status import ExecutionStatus
from stageline.settings import Settings
from stageline.store import executions
from stageline.store.executions import TagInUse
from stageline.store.items import StoredItem

LIMIT = 1024  # settings.inline_limit in tests/conftest.py
BIG = "b" * 3000
EDGE = "e" * (LIMIT - 2)  # JSON-encoded with its quotes: exactly the limit
OVER = "o" * (LIMIT - 1)  # one byte over the limit


def split(document: dict[str, str]) -> list[str]:
    return [document["text"], "small", EDGE, OVER]


def measure(text: str) -> dict[str, object]:
    return {"length": len(text), "intact": text in (BIG, "small", EDGE, OVER)}


def sizes() -> Pipeline:
    p = Pipeline("sizes")
    p.step(output="chunks", fan_out=True)(split)
    p.step(output="measures")(measure)
    return p


def _assert_in_storage(engine: Engine, item: StoredItem, expected: object,
                       settings: Settings) -> None:
    digest = item.content_hash.removeprefix("sha256:")[:16]
    path = f"{item.execution_id}/{item.stage}/{item.key}~{digest}"
    assert (item.storage_path, item.data) == (path, None)
    assert item.size > LIMIT
    assert (Path(settings.storage) / path).read_bytes() == engine.runtime.blobs.get(path)
    assert item.load(engine.runtime.blobs) == expected


def _assert_inline(engine: Engine, item: StoredItem, expected: str) -> None:
    assert item.storage_path is None
    assert item.data is not None and len(item.data) == item.size <= LIMIT
    assert item.load(engine.runtime.blobs) == expected


def test_large_items_go_to_storage_and_small_ones_stay_inline(
        engine: Engine, settings: Settings) -> None:
    engine.install(sizes())
    execution = engine.start("sizes", {"text": BIG})

    record = engine.drain(execution.id)

    assert record.status == ExecutionStatus.COMPLETED
    (entry,) = engine.items(record.id, "input")
    _assert_in_storage(engine, entry, {"text": BIG}, settings)
    big, small, edge, over = engine.items(record.id, "chunks")
    _assert_in_storage(engine, big, BIG, settings)
    _assert_inline(engine, small, "small")
    _assert_inline(engine, edge, EDGE)
    assert edge.size == LIMIT
    _assert_in_storage(engine, over, OVER, settings)
    # The next step read every item back intact, wherever it lived.
    assert engine.values(record.id, "measures") == [
        {"length": len(t), "intact": True} for t in (BIG, "small", EDGE, OVER)]
    assert all(i.storage_path is None for i in engine.items(record.id, "measures"))


def double(n: int) -> int:
    return n * 2


def doubling() -> Pipeline:
    p = Pipeline("doubling")
    p.step(output="doubled")(double)
    return p


def test_an_idempotency_key_returns_the_same_execution(engine: Engine) -> None:
    engine.install(doubling())

    first, created = engine.create("doubling", 1, idempotency_key="k-1")
    again, created_again = engine.create("doubling", 2, idempotency_key="k-1")
    other, created_other = engine.create("doubling", 1, idempotency_key="k-2")

    assert (created, created_again, created_other) == (True, False, True)
    assert again.id == first.id and again.payload == 1
    assert other.id != first.id
    assert engine.drain(first.id).result == 2
    assert len(engine.items(first.id, "input")) == 1


def test_a_tag_is_unique_and_resolves_to_its_execution(engine: Engine) -> None:
    engine.install(doubling())
    tagged = engine.start("doubling", 1, tag="nightly")

    with pytest.raises(TagInUse):
        engine.start("doubling", 2, tag="nightly")

    with engine.runtime.db.read() as conn:
        assert executions.resolve(conn, engine.tenant, "nightly").id == tagged.id
        assert executions.resolve(conn, engine.tenant, str(tagged.id)).id == tagged.id
        page = executions.list_page(conn, engine.tenant, executions.ExecutionFilter(), 10, None)
    assert [r.id for r in page] == [tagged.id]  # the refused start left nothing behind


def scale(n: int, factor: int) -> int:
    return n * factor


def scaling(factor: int) -> Pipeline:
    p = Pipeline("scaling")
    p.add_step("scale", output="scaled", adapters=[(scale, {"factor": factor})])
    return p


def test_an_execution_finishes_on_the_version_it_started_with(engine: Engine) -> None:
    engine.install(scaling(2))
    v1 = engine.runtime.versions["scaling"]
    engine.install(scaling(2))
    assert engine.runtime.versions["scaling"] == v1  # the same config: no new version
    old = engine.start("scaling", 5)

    engine.install(scaling(3))
    v2 = engine.runtime.versions["scaling"]
    new = engine.start("scaling", 5)

    assert (v1.version, v2.version) == (1, 2)
    assert v1.config_id != v2.config_id and v1.pipeline_id == v2.pipeline_id
    finished_old, finished_new = engine.drain(old.id), engine.drain(new.id)
    assert (finished_old.config_id, finished_old.result) == (v1.config_id, 10)
    assert (finished_new.config_id, finished_new.result) == (v2.config_id, 15)
    engine.install(scaling(2))
    assert engine.runtime.versions["scaling"].config_id == v1.config_id
