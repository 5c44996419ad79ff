"""The schema, as SQLAlchemy Core tables. Alembic migrations create it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from stageline.store.types import UTCDateTime, bytes_type, json_type

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only

tenants = Table(
    "tenants", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

pipelines = Table(
    "pipelines", metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("archived_at", UTCDateTime),
    UniqueConstraint("tenant_id", "name", name="uq_pipelines_tenant_name"),
)

pipeline_versions = Table(
    "pipeline_versions", metadata,
    Column("config_id", Uuid, primary_key=True),
    Column("pipeline_id", Uuid, ForeignKey("pipelines.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("config_snapshot", json_type(), nullable=False),
    Column("config_hash", String(80), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("pipeline_id", "version", name="uq_pipeline_versions_number"),
    Index("ix_pipeline_versions_hash", "pipeline_id", "config_hash"),
)

sources = Table(
    "sources", metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("key", String(128), nullable=False),
    Column("pipeline_id", Uuid, ForeignKey("pipelines.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "key", name="uq_sources_tenant_key"),
)

executions = Table(
    "executions", metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("pipeline_id", Uuid, ForeignKey("pipelines.id"), nullable=False),
    Column("config_id", Uuid, ForeignKey("pipeline_versions.config_id"), nullable=False),
    Column("status", String(32), nullable=False),
    Column("tag", String(200)),
    Column("idempotency_key", String(200)),
    Column("payload", json_type()),
    Column("meta", json_type()),
    Column("result", json_type()),
    Column("error", Text),
    Column("error_info", json_type()),
    Column("parent_execution_id", Uuid),
    Column("root_execution_id", Uuid),
    Column("replay_source", String(16)),
    Column("replay_batch_id", String(64)),
    Column("replay_request", json_type()),
    Column("source_key", String(128)),
    Column("queue_name", String(128)),
    Column("concurrency_key", String(200)),
    Column("run_timeout_seconds", Integer),
    Column("retry_count", Integer, nullable=False, default=0),
    Column("assigned_to_worker", String(200)),
    Column("batch_id", String(200)),
    Column("deployment_id", String(200)),
    Column("session_id", String(200)),
    Column("user_id", String(200)),
    Column("step_key", String(200)),
    Column("output_schema_name", String(200)),
    Column("skip_cache", Boolean, nullable=False, default=False),
    Column("cancelled_at", UTCDateTime),
    Column("cancelled_by", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "tag", name="uq_executions_tenant_tag"),
    UniqueConstraint("tenant_id", "idempotency_key", name="uq_executions_tenant_idempotency"),
    Index("ix_executions_tenant_created", "tenant_id", "created_at", "id"),
    Index("ix_executions_status", "status"),
    Index("ix_executions_parent", "parent_execution_id"),
)

step_runs = Table(
    "step_runs", metadata,
    Column("execution_id", Uuid, ForeignKey("executions.id"), primary_key=True),
    Column("step_index", Integer, primary_key=True),
    Column("step_type", String(128), nullable=False),
    Column("input_stage", String(128), nullable=False),
    Column("output_stage", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("outstanding", Integer, nullable=False, default=0),
    Column("completed", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("handler_seconds", Float, nullable=False, default=0.0),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("error_message", Text),
    Column("error", json_type()),
    Column("decision", json_type()),
    Column("source_step_type", String(128)),
    Column("source_execution_id", Uuid),
    Column("checkpoint_id", String(200)),
)

messages = Table(
    "messages", metadata,
    Column("id", Uuid, primary_key=True),  # also the message's correlation id
    Column("execution_id", Uuid, ForeignKey("executions.id"), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("route", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("item_key", String(512)),  # None for a collect message: the whole stage
    Column("input_execution_id", Uuid, nullable=False),  # who holds the input item
    Column("parent_correlation_id", String(64)),
    Column("replay_batch_id", String(64)),
    Column("queue", String(128), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("attempt", Integer, nullable=False, default=0),
    Column("available_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_token", Uuid),
    Column("lease_expires_at", UTCDateTime),
    Column("lineage_id", Uuid),  # the lineage entry of the attempt in flight
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_messages_lease", "status", "lease_expires_at"),
    Index("ix_messages_execution", "execution_id", "status"),
)

# The claim reads ready messages in this order, straight off the index.
Index("ix_messages_ready", messages.c.status, messages.c.queue, messages.c.priority.desc(),
      messages.c.available_at)

lineage_entries = Table(
    "lineage_entries", metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("parent_correlation_id", String(64)),
    Column("replay_batch_id", String(64)),
    Column("execution_id", Uuid, nullable=False),
    Column("route_id", String(128)),
    Column("adapter_name", String(300)),
    Column("adapter_index", Integer),
    Column("stage_name", String(128), nullable=False),
    Column("stage_status", String(16), nullable=False),
    Column("stage_input_hash", String(80)),
    Column("item_key", String(512)),
    Column("attempt", Integer, nullable=False, default=1),
    Column("started_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("duration_ms", Float),
    Column("meta", json_type()),
    Column("error_info", json_type()),
    Index("ix_lineage_execution_started", "execution_id", "started_at"),
    Index("ix_lineage_tenant_started", "tenant_id", "started_at", "id"),
    Index("ix_lineage_route_status", "execution_id", "route_id", "stage_status"),
    Index("ix_lineage_correlation", "correlation_id"),
    Index("ix_lineage_parent", "parent_correlation_id"),
)

stage_items = Table(
    "stage_items", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("execution_id", Uuid, nullable=False),
    Column("stage_name", String(128), nullable=False),
    Column("item_key", String(512), nullable=False),
    Column("correlation_id", String(64)),  # the message that produced it
    Column("content_type", String(128), nullable=False),
    Column("size", Integer, nullable=False),
    Column("content_hash", String(80), nullable=False),
    Column("data", bytes_type()),  # inline when small
    Column("storage_path", String(1024)),  # else in stage storage
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("execution_id", "stage_name", "item_key", name="uq_stage_items_key"),
)

stage_sources = Table(
    "stage_sources", metadata,
    # A child execution's stage that it reads (wholly or in part) from another
    # execution: replays refer to their parent's items instead of copying them.
    Column("execution_id", Uuid, ForeignKey("executions.id"), primary_key=True),
    Column("stage_name", String(128), primary_key=True),
    Column("source_execution_id", Uuid, nullable=False),
    Column("mode", String(8), nullable=False),
    Column("producer_step", Integer),  # the child's step writing its own items, for FILL
)

step_cache = Table(
    "step_cache", metadata,
    # Reuse by input hash: which message's outputs answer a step (adapters and
    # parameters included in the key) for a given input.
    Column("tenant_id", Uuid, primary_key=True),
    Column("cache_key", String(80), primary_key=True),
    Column("execution_id", Uuid, nullable=False),
    Column("stage_name", String(128), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
