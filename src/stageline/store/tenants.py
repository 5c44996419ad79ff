"""Tenants and their API keys. Keys are stored as SHA-256 hashes only."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, select, update

from stageline.store.dialect import insert_ignoring_conflicts
from stageline.store.ids import new_id
from stageline.store.tables import api_keys, tenants
from stageline.store.types import utcnow

DEFAULT_TENANT = "default"
KEY_PREFIX = "sl_"


@dataclass(frozen=True)
class ApiKey:
    id: UUID
    tenant_id: UUID
    tenant: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def ensure_tenant(conn: Connection, name: str = DEFAULT_TENANT) -> UUID:
    """The tenant's id, creating it if needed; a concurrent creator's row wins."""
    insert_ignoring_conflicts(conn, tenants, [{"id": new_id(), "name": name,
                                               "created_at": utcnow()}], "name")
    return UUID(str(conn.execute(select(tenants.c.id).where(tenants.c.name == name))
                    .scalar_one()))


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(conn: Connection, tenant: str, name: str) -> tuple[str, ApiKey]:
    """A new key; the secret is returned once and never stored."""
    tenant_id = ensure_tenant(conn, tenant)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id, now = new_id(), utcnow()
    conn.execute(api_keys.insert().values(
        id=key_id, tenant_id=tenant_id, name=name, prefix=secret[:10],
        key_hash=hash_key(secret), created_at=now,
    ))
    return secret, ApiKey(key_id, tenant_id, tenant, name, secret[:10], now, None, None)


def authenticate(conn: Connection, secret: str) -> UUID | None:
    """The tenant of an active key, or None."""
    row = conn.execute(
        select(api_keys.c.tenant_id).where(
            api_keys.c.key_hash == hash_key(secret), api_keys.c.revoked_at.is_(None)
        )
    ).first()
    return None if row is None else row.tenant_id


def list_keys(conn: Connection) -> list[ApiKey]:
    rows = conn.execute(
        select(api_keys, tenants.c.name.label("tenant"))
        .join(tenants, tenants.c.id == api_keys.c.tenant_id)
        .order_by(api_keys.c.created_at)
    )
    return [ApiKey(r.id, r.tenant_id, r.tenant, r.name, r.prefix, r.created_at,
                   r.last_used_at, r.revoked_at) for r in rows]


def revoke_key(conn: Connection, key_id_or_prefix: str) -> bool:
    cond = api_keys.c.prefix == key_id_or_prefix
    with contextlib.suppress(ValueError):
        cond = cond | (api_keys.c.id == UUID(key_id_or_prefix))
    result = conn.execute(
        update(api_keys).where(cond, api_keys.c.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    return result.rowcount > 0


def any_keys(conn: Connection) -> bool:
    return conn.execute(select(api_keys.c.id).limit(1)).first() is not None
