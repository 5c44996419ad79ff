"""API keys: X-API-Key, Authorization: Bearer, or X-Clinia-API-Key (seed 001)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from uuid import UUID

from stageline.api.errors import ApiError
from stageline.store import tenants
from stageline.store.db import Database

CACHE_SECONDS = 5.0


@dataclass
class Authenticator:
    """Maps a presented key to its tenant.

    Answers are cached for a few seconds so the hot path does not query the
    keys table on every request; a revoked key stops working within that time.
    """

    db: Database
    default_tenant: UUID
    open_access: bool  # no keys required (embedded on loopback with no keys yet)
    _keys: dict[str, tuple[float, UUID | None]] = field(default_factory=dict)
    _any_keys: tuple[float, bool] = (0.0, False)

    def tenant_for(self, key: str | None) -> UUID:
        if key:
            tenant = self._lookup(key)
            if tenant is None:
                raise ApiError(401, "invalid_api_key", "the API key is unknown or revoked")
            return tenant
        if self.open_access and not self._keys_exist():
            return self.default_tenant
        raise ApiError(401, "missing_api_key",
                       "send an API key in X-API-Key or Authorization: Bearer")

    def cached(self, key: str | None) -> UUID | None:
        """The tenant for `key` when the answer is known without the database."""
        now = time.monotonic()
        if key:
            found = self._keys.get(key)
            return found[1] if found and found[0] > now else None
        if self.open_access and self._any_keys[0] > now and not self._any_keys[1]:
            return self.default_tenant
        return None

    def _lookup(self, key: str) -> UUID | None:
        now = time.monotonic()
        cached = self._keys.get(key)
        if cached and cached[0] > now:
            return cached[1]
        with self.db.read() as conn:
            tenant = tenants.authenticate(conn, key)
        if len(self._keys) > 10000:
            self._keys.clear()
        self._keys[key] = (now + CACHE_SECONDS, tenant)
        return tenant

    def _keys_exist(self) -> bool:
        now = time.monotonic()
        if self._any_keys[0] > now:
            return self._any_keys[1]
        with self.db.read() as conn:
            exist = tenants.any_keys(conn)
        self._any_keys = (now + CACHE_SECONDS, exist)
        return exist


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None
