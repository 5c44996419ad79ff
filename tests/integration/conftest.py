"""Fixtures of the engine tests: an `Engine` driver over the shared `runtime`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_driver import Engine

from stageline.runtime import Runtime


@pytest.fixture
def engine(runtime: Runtime) -> Iterator[Engine]:
    driver = Engine(runtime)
    try:
        yield driver
    finally:
        driver.close()
