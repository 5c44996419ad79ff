"""Stage items: small ones inline in the database, large ones in stage storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from stageline.domain.items import Encoded, decode
from stageline.storage.blobs import BlobStore
from stageline.store.bulk import Bulk
from stageline.store.dialect import ignoring_conflicts
from stageline.store.tables import stage_items
from stageline.store.types import utcnow


@dataclass(frozen=True)
class NewItem:
    """An item about to be written to a stage."""

    stage: str
    key: str
    correlation_id: str | None
    encoded: Encoded


@dataclass(frozen=True)
class StoredItem:
    execution_id: UUID
    stage: str
    key: str
    correlation_id: str | None
    content_type: str
    size: int
    content_hash: str
    data: bytes | None
    storage_path: str | None
    created_at: datetime

    def load(self, blobs: BlobStore) -> Any:
        raw = self.data if self.storage_path is None else blobs.get(self.storage_path)
        assert raw is not None
        return decode(raw, self.content_type)

    def raw(self, blobs: BlobStore) -> bytes:
        if self.storage_path is None:
            assert self.data is not None
            return self.data
        return blobs.get(self.storage_path)


def storage_path(execution_id: UUID, stage: str, key: str,
                 content_hash: str | None = None) -> str:
    """Where an item's bytes go: under its stage's prefix, named by key and content.

    The content in the name means an attempt that lost its lease (and whose
    commit will be refused) can never overwrite bytes another attempt committed.
    """
    if content_hash is None:
        return f"{execution_id}/{stage}/{key}"
    return f"{execution_id}/{stage}/{key}~{content_hash.removeprefix('sha256:')[:16]}"


def offload(execution_id: UUID, items: list[NewItem], blobs: BlobStore,
            inline_limit: int) -> dict[str, str]:
    """Write the large items' bytes to storage before their rows commit.

    Paths are named by content, so a retry that produces the same bytes
    rewrites the same file and one that produces other bytes writes beside it.
    """
    paths: dict[str, str] = {}
    for item in items:
        if len(item.encoded.data) > inline_limit:
            path = storage_path(execution_id, item.stage, item.key, item.encoded.content_hash)
            blobs.put(path, item.encoded.data)
            paths[f"{item.stage}\x00{item.key}"] = path
    return paths


def item_rows(execution_id: UUID, items: list[NewItem],
              paths: dict[str, str]) -> list[dict[str, Any]]:
    now = utcnow()
    rows = []
    for item in items:
        path = paths.get(f"{item.stage}\x00{item.key}")
        rows.append({
            "execution_id": execution_id, "stage_name": item.stage, "item_key": item.key,
            "correlation_id": item.correlation_id, "content_type": item.encoded.content_type,
            "size": len(item.encoded.data), "content_hash": item.encoded.content_hash,
            "data": None if path else item.encoded.data, "storage_path": path,
            "created_at": now,
        })
    return rows


ITEM_COLUMNS = ["execution_id", "stage_name", "item_key", "correlation_id", "content_type",
                "size", "content_hash", "data", "storage_path", "created_at"]
# A retried attempt may write an item again: the first write wins.
_INSERT_ITEMS = Bulk(lambda dialect: ignoring_conflicts(
    dialect, stage_items, ("execution_id", "stage_name", "item_key")), ITEM_COLUMNS)


def insert_items(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Rows as `item_rows` makes them."""
    _INSERT_ITEMS.execute(conn, rows)


def to_item(row: Any) -> StoredItem:
    return StoredItem(row.execution_id, row.stage_name, row.item_key, row.correlation_id,
                      row.content_type, row.size, row.content_hash, row.data,
                      row.storage_path, row.created_at)
