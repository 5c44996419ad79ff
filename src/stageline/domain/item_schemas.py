"""Item schemas: the JSON Schema a step declares for ONE item it reads or writes.

Pure. A schema is checked when its config is validated (`schema_findings`),
and a replay checks a sample of the parent's items against the route's
`input_schema` before it publishes them (`item_problem`). Workers do not check
items at run time.

Schemas use JSON Schema 2020-12 unless they name another draft in `$schema`,
and must be self-contained: a `$ref` outside the schema would make the server
fetch it, so it is refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from stageline.domain.graph import Finding

if TYPE_CHECKING:
    from stageline.domain.config import StepConfig

__all__ = ["SCHEMA_FIELDS", "canonical", "declared_types", "item_problem", "same_schema",
           "schema_findings", "schema_problem", "types_disagree"]

SCHEMA_FIELDS = ("input_schema", "output_schema")
MESSAGE_LIMIT = 300  # an error quotes the item: keep findings readable
CACHED_SCHEMA_BYTES = 64 * 1024  # larger schemas are checked each time, not kept
_REF_KEYS = ("$ref", "$dynamicRef")
_PLAIN_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
_SCHEMA_REMEDY = ("fix the schema: JSON Schema 2020-12 (or the draft its $schema names), "
                  "self-contained, describing one item")


def canonical(schema: dict[str, Any]) -> bytes:
    """The schema's JSON with sorted keys: equal schemas give equal bytes."""
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)


def same_schema(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return canonical(a) == canonical(b)


# --- is it a schema? --------------------------------------------------------------------


def schema_findings(steps: Sequence[StepConfig], first_index: int = 0) -> list[Finding]:
    """`invalid_item_schema` for every declared schema that is not a valid JSON Schema."""
    findings = []
    for index, step in enumerate(steps, start=first_index):
        for field in SCHEMA_FIELDS:
            schema = getattr(step, field)
            problem = None if schema is None else schema_problem(schema)
            if problem is not None:
                findings.append(Finding(
                    "invalid_item_schema", f"steps[{index}].{field}",
                    f"step {step.name!r} declares an {field} that is not a valid JSON Schema: "
                    f"{problem}", _SCHEMA_REMEDY))
    return findings


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why `schema` is not a usable item schema, or None when it is."""
    key = canonical(schema)
    return _cached_problem(key) if len(key) <= CACHED_SCHEMA_BYTES else _schema_problem(key)


def _schema_problem(key: bytes) -> str | None:
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

    schema = orjson.loads(key)
    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        return _located(exc.json_path, exc.message)
    except Exception as exc:  # e.g. a pattern nested too deep for the regex parser
        return f"it cannot be checked: {_short(str(exc) or type(exc).__name__)}"
    remote = next(_remote_refs(schema, "$"), None)
    if remote is not None:
        where, ref = remote
        return _located(where, f"{ref!r} refers outside the schema; only local '#...' "
                        "references are allowed")
    return None


# An SDK pipeline's config is rebuilt often, and versions are read back from the
# database: each distinct (small) schema is checked once per process.
_cached_problem = functools.lru_cache(maxsize=256)(_schema_problem)


def _validator_class(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    from jsonschema.validators import validator_for  # type: ignore[import-untyped]

    if not isinstance(schema.get("$schema", ""), str):
        return Draft202012Validator  # check_schema reports the bad $schema
    return validator_for(schema, default=Draft202012Validator)


def _remote_refs(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            where = _json_path(path, key)
            if key in _REF_KEYS and isinstance(value, str) and not value.startswith("#"):
                yield where, value
            yield from _remote_refs(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _remote_refs(value, f"{path}[{index}]")


def _json_path(path: str, key: str) -> str:
    """`path` one key deeper, written as jsonschema writes its errors' paths."""
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{path}['{escaped}']"


# --- does an item fit? ------------------------------------------------------------------


def item_problem(schema: dict[str, Any], value: Any) -> str | None:
    """The most relevant reason `value` does not fit `schema`, or None when it fits.

    Bytes items are checked as a string of the same length (JSON has no bytes;
    a `bytes` annotation gives `{"type": "string", "format": "binary"}`).
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    from jsonschema.exceptions import best_match

    key = canonical(schema)
    try:
        validator = _cached_validator(key) if len(key) <= CACHED_SCHEMA_BYTES else (
            _validator(key))
        error = best_match(validator.iter_errors(value))
    except Exception as exc:  # an unresolvable local $ref, a schema too deep to apply
        return f"the schema cannot be applied: {_short(str(exc) or type(exc).__name__)}"
    return None if error is None else _located(error.json_path, error.message)


def _validator(key: bytes) -> Any:
    import referencing

    schema = orjson.loads(key)
    # An empty registry: never fetch a remote reference while checking items.
    return _validator_class(schema)(schema, registry=referencing.Registry())


_cached_validator = functools.lru_cache(maxsize=64)(_validator)


# --- what types does it declare? --------------------------------------------------------


def declared_types(schema: dict[str, Any] | None) -> frozenset[str] | None:
    """The JSON types a schema admits when it says so plainly (`type`, or an
    `anyOf`/`oneOf` whose every branch says so); None when it does not."""
    if schema is None:
        return None
    node = _local_target(schema, schema)
    kind = node.get("type")
    if isinstance(kind, str):
        return frozenset({kind})
    if isinstance(kind, list) and kind and all(isinstance(k, str) for k in kind):
        return frozenset(kind)
    for combinator in ("anyOf", "oneOf"):
        branches = node.get(combinator)
        if isinstance(branches, list) and branches:
            found = [declared_types(_local_target(schema, b)) if isinstance(b, dict) else None
                     for b in branches]
            if all(f is not None for f in found):
                return frozenset().union(*(f for f in found if f is not None))
    return None


def types_disagree(produced: dict[str, Any] | None, consumed: dict[str, Any] | None) -> bool:
    """Whether no item of the producer's declared type can be of the consumer's."""
    out, into = declared_types(produced), declared_types(consumed)
    if out is None or into is None:
        return False
    return not (_widened(out) & _widened(into))


def _widened(types: frozenset[str]) -> frozenset[str]:
    return types | {"number"} if "integer" in types else types


def _local_target(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or what its `#/$defs/...` reference points at (one hop)."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        defs = root.get("$defs")
        target = defs.get(ref.removeprefix("#/$defs/")) if isinstance(defs, dict) else None
        if isinstance(target, dict):
            return target
    return node


def _located(path: str, message: str) -> str:
    return _short(message if path == "$" else f"at {path}: {message}")


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else f"{text[:MESSAGE_LIMIT - 1]}…"
