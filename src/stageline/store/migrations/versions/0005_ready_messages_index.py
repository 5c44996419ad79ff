"""ready messages index

An index in the claim's own order: ready messages are read in
(priority DESC, available_at) order straight off it, so a claim no longer
sorts every queued message of a large fan-out. Expired leases are found
through (status, lease_expires_at).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 18:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_messages_claim", table_name="messages")
    op.create_index("ix_messages_ready", "messages",
                    ["status", "queue", sa.literal_column("priority").desc(), "available_at"])
    op.create_index("ix_messages_lease", "messages", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_lease", table_name="messages")
    op.drop_index("ix_messages_ready", table_name="messages")
    op.create_index("ix_messages_claim", "messages", ["status", "queue", "available_at"])
