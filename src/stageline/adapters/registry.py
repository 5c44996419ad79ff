"""Adapters by name: the shipped library, decorated functions and import paths."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)

_REGISTRY: dict[str, Handler] = {}


class UnknownAdapter(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown adapter {name!r}: not registered and not an importable "
                         "'module:function' path")
        self.name = name


def adapter(name: str) -> Callable[[F], F]:
    """Register a function as a named adapter: `@adapter("segment_markdown")`."""

    def register(fn: F) -> F:
        _REGISTRY[name] = fn
        fn.__stageline_adapter__ = name  # type: ignore[attr-defined]
        return fn

    return register


def adapter_name(fn: Handler) -> str:
    """The name a callable is referred to by in a config."""
    registered = getattr(fn, "__stageline_adapter__", None)
    if isinstance(registered, str):
        return registered
    return f"{fn.__module__}:{fn.__qualname__}"


def registered_names() -> list[str]:
    _load_library()
    return sorted(_REGISTRY)


def resolve(name: str, local: Mapping[str, Handler] | None = None) -> Handler:
    """Find the callable behind an adapter name.

    Order: handlers of the loaded pipeline files, the registry, then an
    import path. Import paths must point at a module-level function.
    """
    if local and name in local:
        return local[name]
    _load_library()
    if name in _REGISTRY:
        return _REGISTRY[name]
    return _import(name)


def _import(path: str) -> Handler:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UnknownAdapter(path)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise UnknownAdapter(path) from exc
    if not callable(target):
        raise UnknownAdapter(path)
    return target  # type: ignore[no-any-return]


def wants_context(fn: Handler, params: Mapping[str, Any]) -> bool:
    """Whether a handler takes a second positional argument for the StepContext."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    positional = [
        p for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in params
    ]
    return len(positional) >= 2


def _load_library() -> None:
    # The shipped adapters register themselves on import.
    importlib.import_module("stageline.adapters.library")
