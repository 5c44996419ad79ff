"""Time-ordered ids: UUID v7 sorts by creation, which keeps indexes compact."""

from __future__ import annotations

from uuid import UUID

from uuid_utils.compat import uuid7


def new_id() -> UUID:
    return uuid7()
