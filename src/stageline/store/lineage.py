"""Reading lineage entries."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Connection, func, select

from stageline.store.records import LineageRecord
from stageline.store.tables import lineage_entries


def for_execution(conn: Connection, execution_id: UUID,
                  limit: int) -> tuple[int, list[LineageRecord]]:
    """An execution's entries ordered by started_at, and how many there are in all."""
    total = conn.execute(select(func.count()).select_from(lineage_entries).where(
        lineage_entries.c.execution_id == execution_id)).scalar_one()
    rows = conn.execute(
        select(lineage_entries).where(lineage_entries.c.execution_id == execution_id)
        .order_by(lineage_entries.c.started_at, lineage_entries.c.id).limit(limit)
    )
    return total, [LineageRecord.from_row(r) for r in rows]
