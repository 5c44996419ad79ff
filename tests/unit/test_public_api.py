"""The public surface is small and pinned: changing it is a decision."""

from __future__ import annotations

import stageline


def test_all_is_pinned() -> None:
    assert sorted(stageline.__all__) == sorted([
        "AsyncClient", "Client", "Fatal", "Pipeline", "StepContext", "__version__", "adapter",
    ])


def test_everything_in_all_exists() -> None:
    for name in stageline.__all__:
        assert getattr(stageline, name) is not None
