"""Pipelines and versions in the database (stageline.store.pipelines), on both backends."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import pytest

from stageline.domain.config import PipelineConfig
from stageline.store import pipelines, tenants
from stageline.store.db import Database
from stageline.store.pipelines import PipelineArchived, PipelineExists, UnknownPipeline


def make_config(name: str = "docs", *, retries: int = 0) -> PipelineConfig:
    steps: list[dict[str, Any]] = [
        {"name": "to_markdown", "input": "input", "output": "markdown",
         "adapters": [{"name": "html_to_markdown"}]},
        {"name": "segment", "input": "markdown", "output": "chunks", "fan_out": True,
         "retries": retries, "adapters": [{"name": "segment_markdown"}]},
    ]
    return PipelineConfig.model_validate({"name": name, "steps": steps})


@pytest.fixture
def tenant(db: Database) -> UUID:
    with db.write() as conn:
        return tenants.ensure_tenant(conn, "acme")


@pytest.fixture
def other_tenant(db: Database) -> UUID:
    with db.write() as conn:
        return tenants.ensure_tenant(conn, "globex")


def test_create_makes_version_one(db: Database, tenant: UUID) -> None:
    with db.write() as conn:
        created = pipelines.create(conn, tenant, make_config())
    assert (created.pipeline, created.version) == ("docs", 1)
    with db.read() as conn:
        found = pipelines.find(conn, tenant, "docs")
        by_id = pipelines.by_config_id(conn, tenant, created.config_id)
    assert found == by_id == created
    assert found.config == make_config()


def test_create_refuses_a_taken_name_and_changes_nothing(db: Database, tenant: UUID) -> None:
    with db.write() as conn:
        pipelines.create(conn, tenant, make_config())
    with pytest.raises(PipelineExists), db.write() as conn:
        pipelines.create(conn, tenant, make_config(retries=2))
    with db.read() as conn:
        assert pipelines.get_info(conn, tenant, "docs").latest_version == 1


def test_publish_creates_a_version_only_when_the_config_changed(db: Database,
                                                               tenant: UUID) -> None:
    with db.write() as conn:
        first = pipelines.create(conn, tenant, make_config())
        same, created_same = pipelines.publish(conn, tenant, make_config())
        second, created_second = pipelines.publish(conn, tenant, make_config(retries=3))
    assert not created_same and same == first
    assert created_second and second.version == 2 and second.config_id != first.config_id


def test_publishing_an_older_config_again_makes_it_the_newest(db: Database,
                                                             tenant: UUID) -> None:
    with db.write() as conn:
        first = pipelines.create(conn, tenant, make_config())
        pipelines.publish(conn, tenant, make_config(retries=3))
        back, created = pipelines.publish(conn, tenant, make_config())
    assert created and back.version == 3
    assert back.config == first.config and back.config_id != first.config_id


def test_register_still_answers_any_matching_version(db: Database, tenant: UUID) -> None:
    with db.write() as conn:
        first = pipelines.create(conn, tenant, make_config())
        pipelines.publish(conn, tenant, make_config(retries=3))
        again = pipelines.register(conn, tenant, make_config())
    assert again == first


def test_publish_needs_an_existing_active_pipeline(db: Database, tenant: UUID) -> None:
    with pytest.raises(UnknownPipeline), db.write() as conn:
        pipelines.publish(conn, tenant, make_config())
    with db.write() as conn:
        pipelines.create(conn, tenant, make_config())
        pipelines.archive(conn, tenant, "docs")
    with pytest.raises(PipelineArchived), db.write() as conn:
        pipelines.publish(conn, tenant, make_config(retries=1))


def test_archive_is_idempotent_and_hides_the_pipeline_from_lists(db: Database,
                                                                tenant: UUID) -> None:
    with db.write() as conn:
        version = pipelines.create(conn, tenant, make_config())
        pipelines.create(conn, tenant, make_config("kept"))
        first = pipelines.archive(conn, tenant, "docs")
        again = pipelines.archive(conn, tenant, "docs")
    assert first.archived and first.archived_at is not None
    assert again.archived_at == first.archived_at
    with db.read() as conn:
        assert pipelines.is_archived(conn, version.pipeline_id)
        active = pipelines.list_page(conn, tenant, include_archived=False, limit=10, cursor=None)
        every = pipelines.list_page(conn, tenant, include_archived=True, limit=10, cursor=None)
        assert pipelines.find(conn, tenant, "docs").version == 1  # still readable
    assert [p.name for p in active] == ["kept"]
    assert {p.name for p in every} == {"docs", "kept"}


def test_archive_of_an_unknown_pipeline(db: Database, tenant: UUID) -> None:
    with pytest.raises(UnknownPipeline), db.write() as conn:
        pipelines.archive(conn, tenant, "nope")


def test_list_pages_newest_first_with_the_latest_version(db: Database, tenant: UUID) -> None:
    with db.write() as conn:
        for name in ("a", "b", "c"):
            pipelines.create(conn, tenant, make_config(name))
        latest, _ = pipelines.publish(conn, tenant, make_config("b", retries=5))
    seen: list[str] = []
    cursor = None
    with db.read() as conn:
        for _ in range(3):
            page = pipelines.list_page(conn, tenant, include_archived=False, limit=1,
                                       cursor=cursor)
            assert len(page) == 1
            seen.append(page[0].name)
            cursor = (page[0].created_at, page[0].id)
        assert pipelines.list_page(conn, tenant, include_archived=False, limit=1,
                                   cursor=cursor) == []
        b = pipelines.get_info(conn, tenant, "b")
    assert seen == ["c", "b", "a"]
    assert (b.latest_version, b.latest_config_id, b.updated_at) == (
        2, latest.config_id, latest.created_at)


def test_versions_page_newest_first(db: Database, tenant: UUID) -> None:
    with db.write() as conn:
        pipelines.create(conn, tenant, make_config())
        for retries in (1, 2, 3):
            pipelines.publish(conn, tenant, make_config(retries=retries))
    with db.read() as conn:
        first = pipelines.versions_page(conn, tenant, "docs", limit=2, before=None)
        rest = pipelines.versions_page(conn, tenant, "docs", limit=2, before=first[-1].version)
        with pytest.raises(UnknownPipeline):
            pipelines.versions_page(conn, tenant, "nope", limit=2, before=None)
    assert [v.version for v in first] == [4, 3]
    assert [v.version for v in rest] == [2, 1]
    assert all(v.pipeline == "docs" for v in first + rest)


def test_tenants_do_not_see_each_others_pipelines(db: Database, tenant: UUID,
                                                  other_tenant: UUID) -> None:
    with db.write() as conn:
        mine = pipelines.create(conn, tenant, make_config())
        theirs = pipelines.create(conn, other_tenant, make_config())  # same name: allowed
    assert mine.pipeline_id != theirs.pipeline_id
    with db.read() as conn:
        with pytest.raises(UnknownPipeline):
            pipelines.by_config_id(conn, other_tenant, mine.config_id)
        listed = pipelines.list_page(conn, other_tenant, include_archived=True, limit=10,
                                     cursor=None)
    assert [p.id for p in listed] == [theirs.pipeline_id]
    with db.write() as conn:
        pipelines.archive(conn, other_tenant, "docs")
        assert not pipelines.get_info(conn, tenant, "docs").archived


def _concurrently(db: Database, calls: list[Any]) -> list[Any]:
    """Run each call in its own write transaction, all started together."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            with db.write() as conn:
                results[index] = calls[index](conn)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_publishes_get_distinct_numbers(db: Database, tenant: UUID) -> None:
    with db.write() as conn:
        pipelines.create(conn, tenant, make_config())
    results = _concurrently(db, [
        lambda conn, r=retries: pipelines.publish(conn, tenant, make_config(retries=r))
        for retries in range(1, 5)
    ])
    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(version.version for version, created in results if created) == [2, 3, 4, 5]


def test_concurrent_creates_of_one_name_make_one_pipeline(db: Database, tenant: UUID) -> None:
    results = _concurrently(db, [
        lambda conn, r=retries: pipelines.create(conn, tenant, make_config(retries=r))
        for retries in range(4)
    ])
    assert sum(isinstance(r, pipelines.Version) for r in results) == 1
    assert sum(isinstance(r, PipelineExists) for r in results) == 3
