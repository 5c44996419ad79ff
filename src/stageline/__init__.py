"""Stageline: durable pipeline executions with per-item lineage, partial
results and replay from any stage.

The public surface is what `__all__` lists; every other module is private
and may change.
"""

from __future__ import annotations

from stageline.adapters.registry import adapter
from stageline.client import AsyncClient, Client
from stageline.domain.retry import Fatal
from stageline.sdk.context import StepContext
from stageline.sdk.pipeline import Pipeline

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client", "Fatal", "Pipeline", "StepContext", "__version__",
           "adapter"]
