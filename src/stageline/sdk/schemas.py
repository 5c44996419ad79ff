"""Item schemas derived from a handler's type annotations.

`def embed(chunk: Chunk) -> Vector` declares that the step reads `Chunk`
items and writes `Vector` items: Pydantic turns each annotation into a JSON
Schema (`TypeAdapter(annotation).json_schema()`). A collect step reads
`list[X]` (each item is an `X`); a fan_out step returns `list[X]` or
`Iterable[X]` (each item produced is an `X`). A missing annotation, `Any`, or
one Pydantic cannot describe gives no schema: nothing is checked for it.

Derivation is deterministic: the same code gives the same schemas, so the
same config hash.
"""

from __future__ import annotations

import collections.abc
import inspect
import sys
import types
import typing
import warnings
from typing import Any

from pydantic import TypeAdapter

from stageline.adapters.registry import Handler
from stageline.sdk.context import StepContext

__all__ = ["input_schema_of", "output_schema_of"]

_NONE = object()  # "no usable annotation", distinct from an annotation of None
_ELEMENT_ORIGINS = frozenset({
    list, tuple, set, frozenset, collections.abc.Iterable, collections.abc.Iterator,
    collections.abc.Sequence, collections.abc.Collection, collections.abc.Generator,
})


def input_schema_of(fn: Handler, params: typing.Mapping[str, Any], *,
                    collect: bool) -> dict[str, Any] | None:
    """The schema of one item `fn` reads: its first positional parameter that is
    not an adapter parameter nor the StepContext (for a collect step, `list[X]`'s X)."""
    annotation = _item_parameter(fn, params)
    if collect:
        annotation = _element(annotation)
    return _schema(annotation)


def output_schema_of(fn: Handler, *, fan_out: bool) -> dict[str, Any] | None:
    """The schema of one item `fn` writes: its return annotation (for a fan_out
    step, the element type of the list or iterable it returns)."""
    annotation = _return_annotation(fn)
    if fan_out:
        annotation = _element(annotation)
    return _schema(annotation)


def _item_parameter(fn: Handler, params: typing.Mapping[str, Any]) -> Any:
    signature = _signature(fn)
    if signature is None:
        return _NONE
    for parameter in signature.parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            break
        if parameter.name in params:
            continue
        annotation = _resolved(fn, parameter.annotation)
        if annotation is StepContext:
            continue
        return annotation
    return _NONE


def _return_annotation(fn: Handler) -> Any:
    signature = _signature(fn)
    return _NONE if signature is None else _resolved(fn, signature.return_annotation)


def _signature(fn: Handler) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _resolved(fn: Handler, annotation: Any) -> Any:
    """An annotation as a type: a string one (`from __future__ import annotations`)
    is evaluated in the handler's module; one that cannot be is unusable."""
    if annotation is inspect.Parameter.empty:
        return _NONE
    if not isinstance(annotation, str):
        return annotation
    holder = types.SimpleNamespace(__annotations__={"item": annotation})
    try:
        return typing.get_type_hints(holder, globalns=_globals_of(fn),
                                     include_extras=True)["item"]
    except Exception:  # a name only imported for type checking, a local class
        return _NONE


def _globals_of(fn: Handler) -> dict[str, Any]:
    target: Any = inspect.unwrap(fn)
    found = getattr(target, "__globals__", None)
    if isinstance(found, dict):
        return found
    module = sys.modules.get(getattr(target, "__module__", None) or "")  # a callable object
    return vars(module) if module is not None else {}


def _element(annotation: Any) -> Any:
    """X of list[X], Iterable[X], tuple[X, ...]; unusable for anything else."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin not in _ELEMENT_ORIGINS or not args:
        return _NONE
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return _NONE  # a fixed-length tuple is not a list of items
    return args[0]


def _schema(annotation: Any) -> dict[str, Any] | None:
    if annotation is _NONE or annotation is Any:
        return None
    try:
        with warnings.catch_warnings():
            # e.g. a default Pydantic cannot put in JSON: the schema leaves it out
            warnings.simplefilter("ignore")
            schema = TypeAdapter(annotation).json_schema()
    except Exception:  # an arbitrary class, an unresolved forward reference
        return None
    return schema or None  # {} admits anything: no schema
