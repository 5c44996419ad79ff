"""The context a handler may take as its second argument."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class StepContext:
    """Who is running: the execution, the message's correlation id, the attempt.

    `metadata` is recorded on the attempt's lineage entry: put a source URL or
    a document id there and lineage can be filtered by it.
    """

    execution_id: UUID
    correlation_id: str
    step: str
    adapter_name: str
    adapter_index: int
    attempt: int
    item_key: str | None
    logger: logging.Logger = field(repr=False)
    metadata: dict[str, Any] = field(default_factory=dict)
