"""lineage indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:34:59.681185
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("lineage_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lineage_route_status", ["execution_id", "route_id", "stage_status"], unique=False
        )
        batch_op.create_index(
            "ix_lineage_tenant_started", ["tenant_id", "started_at", "id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("lineage_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_lineage_tenant_started")
        batch_op.drop_index("ix_lineage_route_status")
