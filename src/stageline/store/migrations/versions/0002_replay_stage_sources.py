"""replay stage sources

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:11:48.134143
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "stage_sources",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("stage_name", sa.String(length=128), nullable=False),
        sa.Column("source_execution_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("producer_step", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_stage_sources_execution_id_executions"),
        ),
        sa.PrimaryKeyConstraint("execution_id", "stage_name", name=op.f("pk_stage_sources")),
    )


def downgrade() -> None:

    op.drop_table("stage_sources")
