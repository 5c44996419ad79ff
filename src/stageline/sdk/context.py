"""The context a handler may take as its second argument."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from uuid import UUID


@dataclass(frozen=True)
class StepContext:
    execution_id: UUID
    correlation_id: str
    step: str
    adapter_name: str
    adapter_index: int
    attempt: int
    item_key: str | None
    logger: logging.Logger = field(repr=False)
