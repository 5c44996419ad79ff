"""Opaque cursors for stable, keyset-paginated lists."""

from __future__ import annotations

import base64
from datetime import datetime
from uuid import UUID

from stageline.api.errors import ApiError


def encode(created_at: datetime, row_id: UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        created = datetime.fromisoformat(stamp)
        if created.tzinfo is None:
            raise ValueError("cursor time without a time zone")
        return created, UUID(row_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_cursor", "the cursor is malformed") from exc
