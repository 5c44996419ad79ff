"""Settings: command-line options override STAGELINE_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAGELINE_", extra="ignore")

    db: str = "sqlite:///stageline.db"
    storage: str = "stageline-data"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    concurrency: int = Field(default=4, ge=1, le=256)
    batch_size: int = Field(default=256, ge=1, le=10000)
    lease_seconds: float = Field(default=30.0, gt=0)
    poll_interval: float = Field(default=0.5, gt=0)
    inline_limit: int = Field(default=64 * 1024, ge=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    pool_size: int = Field(default=10, ge=1)
    durability: Literal["normal", "strict"] = "normal"
    queues: str = "default"
    # Import paths (`module:function`) that configs sent over the API may name,
    # by module prefix. Empty: only registered adapters and the handlers of the
    # files the server loaded, so API users cannot make workers run arbitrary code.
    adapter_modules: str = ""
    log_level: str = "info"

    @property
    def adapter_module_list(self) -> list[str]:
        return [m.strip() for m in self.adapter_modules.split(",") if m.strip()]

    @property
    def queue_list(self) -> list[str]:
        return [q.strip() for q in self.queues.split(",") if q.strip()]
