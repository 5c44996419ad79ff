"""step cache

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 13:41:24.477428
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import stageline.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "step_cache",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("cache_key", sa.String(length=80), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("stage_name", sa.String(length=128), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "cache_key", name=op.f("pk_step_cache")),
    )


def downgrade() -> None:

    op.drop_table("step_cache")
