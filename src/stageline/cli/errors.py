"""Expected failures end as one clear line on stderr, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console

from stageline.client import ApiError
from stageline.loader import LoadError
from stageline.storage.blobs import StorageUnavailable
from stageline.store.db import DatabaseUnavailable
from stageline.store.executions import TagInUse, UnknownExecution
from stageline.store.migrate import SchemaMismatch
from stageline.store.pipelines import UnknownPipeline

F = TypeVar("F", bound=Callable[..., Any])
err = Console(stderr=True, soft_wrap=True)

EXPECTED = (LoadError, DatabaseUnavailable, SchemaMismatch, UnknownPipeline, UnknownExecution,
            TagInUse, StorageUnavailable, ValueError, OSError, ApiError, httpx.TransportError,
            TimeoutError)


def friendly(fn: F) -> F:
    """Expected failures exit with code 2 and one line on stderr."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EXPECTED as exc:
            err.print(f"[red]error:[/red] {one_line(exc)}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "setting"
        return f"invalid {where}: {first['msg']}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
