"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 12:57:11.352381
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import stageline.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "lineage_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("parent_correlation_id", sa.String(length=64), nullable=True),
        sa.Column("replay_batch_id", sa.String(length=64), nullable=True),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("route_id", sa.String(length=128), nullable=True),
        sa.Column("adapter_name", sa.String(length=300), nullable=True),
        sa.Column("adapter_index", sa.Integer(), nullable=True),
        sa.Column("stage_name", sa.String(length=128), nullable=False),
        sa.Column("stage_status", sa.String(length=16), nullable=False),
        sa.Column("stage_input_hash", sa.String(length=80), nullable=True),
        sa.Column("item_key", sa.String(length=512), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "error_info",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_entries")),
    )
    with op.batch_alter_table("lineage_entries", schema=None) as batch_op:
        batch_op.create_index("ix_lineage_correlation", ["correlation_id"], unique=False)
        batch_op.create_index(
            "ix_lineage_execution_started", ["execution_id", "started_at"], unique=False
        )
        batch_op.create_index("ix_lineage_parent", ["parent_correlation_id"], unique=False)

    op.create_table(
        "stage_items",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("stage_name", sa.String(length=128), nullable=False),
        sa.Column("item_key", sa.String(length=512), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=False),
        sa.Column(
            "data", sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql"), nullable=True
        ),
        sa.Column("storage_path", sa.String(length=1024), nullable=True),
        sa.Column("created_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_items")),
        sa.UniqueConstraint("execution_id", "stage_name", "item_key", name="uq_stage_items_key"),
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "pipelines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_pipelines_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_pipelines_tenant_name"),
    )
    op.create_table(
        "pipeline_versions",
        sa.Column("config_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "config_snapshot",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("config_hash", sa.String(length=80), nullable=False),
        sa.Column("created_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_pipeline_versions_pipeline_id_pipelines"),
        ),
        sa.PrimaryKeyConstraint("config_id", name=op.f("pk_pipeline_versions")),
        sa.UniqueConstraint("pipeline_id", "version", name="uq_pipeline_versions_number"),
    )
    with op.batch_alter_table("pipeline_versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pipeline_versions_hash", ["pipeline_id", "config_hash"], unique=False
        )

    op.create_table(
        "sources",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipelines.id"], name=op.f("fk_sources_pipeline_id_pipelines")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sources_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("tenant_id", "key", name="uq_sources_tenant_key"),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("config_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "error_info",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("parent_execution_id", sa.Uuid(), nullable=True),
        sa.Column("root_execution_id", sa.Uuid(), nullable=True),
        sa.Column("replay_source", sa.String(length=16), nullable=True),
        sa.Column("replay_batch_id", sa.String(length=64), nullable=True),
        sa.Column(
            "replay_request",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("source_key", sa.String(length=128), nullable=True),
        sa.Column("queue_name", sa.String(length=128), nullable=True),
        sa.Column("concurrency_key", sa.String(length=200), nullable=True),
        sa.Column("run_timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("assigned_to_worker", sa.String(length=200), nullable=True),
        sa.Column("batch_id", sa.String(length=200), nullable=True),
        sa.Column("deployment_id", sa.String(length=200), nullable=True),
        sa.Column("session_id", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("step_key", sa.String(length=200), nullable=True),
        sa.Column("output_schema_name", sa.String(length=200), nullable=True),
        sa.Column("skip_cache", sa.Boolean(), nullable=False),
        sa.Column("cancelled_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["pipeline_versions.config_id"],
            name=op.f("fk_executions_config_id_pipeline_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipelines.id"], name=op.f("fk_executions_pipeline_id_pipelines")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_executions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_executions_tenant_idempotency"
        ),
        sa.UniqueConstraint("tenant_id", "tag", name="uq_executions_tenant_tag"),
    )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index("ix_executions_parent", ["parent_execution_id"], unique=False)
        batch_op.create_index("ix_executions_status", ["status"], unique=False)
        batch_op.create_index(
            "ix_executions_tenant_created", ["tenant_id", "created_at", "id"], unique=False
        )

    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("item_key", sa.String(length=512), nullable=True),
        sa.Column("input_execution_id", sa.Uuid(), nullable=False),
        sa.Column("parent_correlation_id", sa.String(length=64), nullable=True),
        sa.Column("replay_batch_id", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=128), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("available_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column(
            "lease_expires_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("lineage_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", stageline.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["executions.id"], name=op.f("fk_messages_execution_id_executions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_claim", ["status", "queue", "available_at"], unique=False
        )
        batch_op.create_index("ix_messages_execution", ["execution_id", "status"], unique=False)

    op.create_table(
        "step_runs",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_type", sa.String(length=128), nullable=False),
        sa.Column("input_stage", sa.String(length=128), nullable=False),
        sa.Column("output_stage", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("outstanding", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("handler_seconds", sa.Float(), nullable=False),
        sa.Column("started_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", stageline.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "error",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "decision",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("source_step_type", sa.String(length=128), nullable=True),
        sa.Column("source_execution_id", sa.Uuid(), nullable=True),
        sa.Column("checkpoint_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["executions.id"], name=op.f("fk_step_runs_execution_id_executions")
        ),
        sa.PrimaryKeyConstraint("execution_id", "step_index", name=op.f("pk_step_runs")),
    )


def downgrade() -> None:

    op.drop_table("step_runs")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_execution")
        batch_op.drop_index("ix_messages_claim")

    op.drop_table("messages")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_tenant_created")
        batch_op.drop_index("ix_executions_status")
        batch_op.drop_index("ix_executions_parent")

    op.drop_table("executions")
    op.drop_table("sources")
    with op.batch_alter_table("pipeline_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_pipeline_versions_hash")

    op.drop_table("pipeline_versions")
    op.drop_table("pipelines")
    op.drop_table("api_keys")
    op.drop_table("tenants")
    op.drop_table("stage_items")
    with op.batch_alter_table("lineage_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_lineage_parent")
        batch_op.drop_index("ix_lineage_execution_started")
        batch_op.drop_index("ix_lineage_correlation")

    op.drop_table("lineage_entries")
