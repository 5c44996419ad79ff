"""Validating a pipeline config document: a report of findings with stable codes.

Pure: the body is parsed, checked against the config model, the graph's
rules and the steps' item schemas, and its adapter names are looked up in a
catalog the caller passes in. Nothing is saved here, and nothing is imported
except by the catalog's own `importable` check.

Findings make a config invalid; warnings do not (a producer and its consumer
that declare item schemas of different types, say), but they are reported.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, get_args

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from stageline.domain.config import PipelineConfig
from stageline.domain.graph import Finding, GraphError
from stageline.domain.item_schemas import declared_types, types_disagree

if TYPE_CHECKING:
    import yaml

__all__ = ["CODES", "AdapterCatalog", "Format", "ValidationReport", "schema_warnings",
           "validate_body", "validate_config"]

# Every code a report can hold. Codes are stable: clients match on them.
CODES = frozenset({
    # the body
    "invalid_json", "invalid_yaml", "document_too_large", "unsupported_value",
    # the config model
    "invalid_type", "missing_field", "unknown_field", "invalid_name", "invalid_value",
    # the graph (stageline.domain.graph)
    "duplicate_step_name", "output_is_entry_stage", "stage_written_twice",
    "fan_out_and_collect", "step_reads_own_output", "unknown_input_stage", "cycle",
    # the item schemas (stageline.domain.item_schemas)
    "invalid_item_schema",
    # the workers
    "unknown_adapter",
    # warnings: reported, but the config stays valid
    "stage_type_mismatch",
})

# Bounds on the parsed document: far above any real config, far below what
# hurts. YAML aliases can make a small body expand to an enormous (even
# cyclic) structure; the walk stops at these bounds long before that.
MAX_NODES = 20_000
MAX_DEPTH = 64
MAX_EVENTS = 2 * MAX_NODES + 4  # YAML: a scalar is one event, a collection two
# 200 steps of 32 adapters: the most a valid config holds (see domain/config.py).
MAX_ADAPTER_REFS = 200 * 32

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JSON_SCALARS = (str, int, float, bool, type(None))
_EXPECTED = {
    "int": "an integer", "float": "a number", "bool": "true or false",
    "string": "a string", "list": "a list", "dict": "an object", "model": "an object",
}
_NAME_RULE = "use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or '_'"


class Format(StrEnum):
    JSON = "json"
    YAML = "yaml"


def _nothing_importable(name: str) -> bool:
    return False


@dataclass(frozen=True)
class AdapterCatalog:
    """The adapters the workers know: names, plus a check for `module:function` paths."""

    names: frozenset[str]
    importable: Callable[[str], bool] = _nothing_importable

    def knows(self, name: str) -> bool:
        return name in self.names or (":" in name and self.importable(name))

    def suggestion(self, name: str) -> str | None:
        close = difflib.get_close_matches(name, sorted(self.names), n=1)
        return close[0] if close else None


@dataclass(frozen=True)
class ValidationReport:
    """The findings on one document; `config` is set when the document is a config.
    `warnings` do not make it invalid."""

    findings: tuple[Finding, ...]
    config: PipelineConfig | None = None
    warnings: tuple[Finding, ...] = ()

    @property
    def valid(self) -> bool:
        return self.config is not None and not self.findings


def validate_body(body: bytes, fmt: Format, catalog: AdapterCatalog) -> ValidationReport:
    """Parse a request body as JSON or YAML, then validate the config it holds."""
    if fmt is Format.JSON:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return ValidationReport((_parse_finding(fmt, exc),))
    else:
        import yaml  # here, not at start-up (some 15 ms): JSON bodies do without it

        try:
            document = _load_yaml(body)
        except _TooLarge:
            return ValidationReport((_too_large(),))
        except yaml.YAMLError as exc:
            return ValidationReport((_parse_finding(fmt, exc),))
    return validate_config(document, catalog)


def validate_config(document: Any, catalog: AdapterCatalog) -> ValidationReport:
    """Every finding on a parsed config document, in a stable order."""
    if not isinstance(document, dict):
        return ValidationReport((_not_an_object(document),))
    shape = _shape_findings(document)
    if shape:
        return ValidationReport(tuple(shape))
    config, model = _model_findings(document)
    adapters = _adapter_findings(document, catalog)
    warnings = () if config is None else tuple(schema_warnings(config))
    return ValidationReport(tuple(model + adapters), config, warnings)


# --- the body ---------------------------------------------------------------------------


def _load_yaml(body: bytes) -> Any:
    """`yaml.safe_load`, by libyaml when present, after a streaming pass that bounds
    depth and size: libyaml's composer recurses in C (deep nesting crashes the
    process) and PyYAML's scanner slows quadratically with nested flow collections."""
    import yaml

    try:
        _bound(body)
    except yaml.MarkedYAMLError as exc:
        _bound_before(body, exc)
        raise
    return yaml.load(body, Loader=_yaml_loader())  # a safe loader: plain data only


def _yaml_loader() -> Any:
    """libyaml's safe loader when PyYAML was built with it: many times faster."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _bound(stream: bytes | str) -> None:
    """Parse `stream` event by event; `_TooLarge` once it nests or holds too much."""
    import yaml

    depth = 0
    for count, event in enumerate(yaml.parse(stream, Loader=_yaml_loader()), start=1):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if depth > MAX_DEPTH or count > MAX_EVENTS:
            raise _TooLarge


def _bound_before(body: bytes, exc: yaml.MarkedYAMLError) -> None:
    """`_TooLarge` if the part of `body` before the parser's error is too large.
    (Cutting a YAML text short never adds values or depth to what comes before.)

    A parser may stop with an error before giving the events of what it has read:
    its scanner reads ahead while a simple key is possible (up to 1024 characters),
    and libyaml 0.2.6 (in PyYAML 6.0.4's wheels) refuses, with a syntax error, flow
    collections nested over 1000 deep. `[[[[...` then fails before any event, where
    an older libyaml gave the events and the walk stopped at MAX_DEPTH. Cut where
    the failing construct starts, the text ends before the error: the parser gives
    the events of the part before it, so the bounds hold whatever the parser's own
    limits and lookahead."""
    import yaml

    marks = [m.index for m in (exc.context_mark, exc.problem_mark) if m is not None]
    end = min(marks, default=0)  # where the failing construct starts, if known
    text = _decoded(body) if end > 0 else None
    if text is None or end >= len(text):
        return
    with contextlib.suppress(yaml.YAMLError):  # the original error is the one to report
        _bound(text[:end])  # the marks count characters, not bytes


def _decoded(body: bytes) -> str | None:
    """`body` as text, as PyYAML's reader decodes it (UTF-16 by its BOM, else UTF-8)."""
    encoding = "utf-16" if body[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return body.decode(encoding)
    except UnicodeDecodeError:
        return None


def _parse_finding(fmt: Format, exc: Exception) -> Finding:
    reason = _yaml_reason(exc) if fmt is Format.YAML else None
    if reason is None:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    label = "JSON" if fmt is Format.JSON else "YAML"
    return Finding(f"invalid_{fmt.value}", "", f"the body is not valid {label}: {reason}",
                   f"send one {label} document holding the pipeline config")


def _yaml_reason(exc: Exception) -> str | None:
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return None


def _not_an_object(document: Any) -> Finding:
    return Finding("invalid_type", "",
                   f"the config must be an object, not {_json_type(document)}",
                   "send an object with 'name' and 'steps'")


class _TooLarge(Exception):
    pass


def _too_large() -> Finding:
    return Finding("document_too_large", "",
                   f"the config holds over {MAX_NODES} values or nests deeper than "
                   f"{MAX_DEPTH} levels",
                   "shrink the config; YAML aliases count once per use")


@dataclass
class _Walk:
    nodes: int = 0
    findings: list[Finding] = field(default_factory=list)


def _shape_findings(document: dict[str, Any]) -> list[Finding]:
    """Values JSON cannot hold (YAML dates, sets, NaN, non-string keys), or too many."""
    walk = _Walk()
    try:
        _visit(document, "", 0, walk)
    except _TooLarge:
        return [_too_large()]
    return walk.findings


def _visit(value: Any, path: str, depth: int, walk: _Walk) -> None:
    walk.nodes += 1
    if walk.nodes > MAX_NODES or depth > MAX_DEPTH:
        raise _TooLarge
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                _visit(item, _join(path, key), depth + 1, walk)
            else:
                walk.findings.append(_unsupported(path, f"key {key!r} is not a string",
                                                  "quote the key"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _visit(item, f"{path}[{index}]", depth + 1, walk)
    elif isinstance(value, float) and not math.isfinite(value):
        walk.findings.append(_unsupported(path, f"{value} is not a JSON number",
                                          "use a finite number"))
    elif not isinstance(value, _JSON_SCALARS):
        walk.findings.append(_unsupported(path, f"a {type(value).__name__} is not a JSON value",
                                          "quote it to keep it as a string"))


def _unsupported(path: str, message: str, remedy: str) -> Finding:
    return Finding("unsupported_value", path, message, remedy)


# --- the config model -------------------------------------------------------------------


def _model_findings(document: dict[str, Any]) -> tuple[PipelineConfig | None, list[Finding]]:
    try:
        return PipelineConfig.model_validate(document), []
    except GraphError as exc:  # raised once every field is valid
        return None, list(exc.findings)
    except ValidationError as exc:
        return None, [_from_pydantic(error) for error in exc.errors(include_url=False)]


def _from_pydantic(error: ErrorDetails) -> Finding:
    loc, kind = error["loc"], error["type"]
    path = _path(loc)
    if kind == "missing":
        return Finding("missing_field", path, f"required field {loc[-1]!r} is missing",
                       f"add {loc[-1]!r}")
    if kind == "extra_forbidden":
        return _unknown_field(loc, path)
    if kind == "string_pattern_mismatch":
        return Finding("invalid_name", path, f"{_short(error['input'])} is not a valid name",
                       _NAME_RULE)
    expected = _expected_type(kind)
    if expected is not None:
        return Finding("invalid_type", path,
                       f"expected {expected}, got {_json_type(error['input'])}",
                       f"give {expected}")
    rule = error["msg"]
    return Finding("invalid_value", path, rule, f"change it: {rule[:1].lower()}{rule[1:]}")


def _unknown_field(loc: tuple[int | str, ...], path: str) -> Finding:
    name = str(loc[-1])
    allowed = _fields_at(loc[:-1])
    close = difflib.get_close_matches(name, allowed, n=1)
    remedy = f"did you mean {close[0]!r}?" if close else "remove it."
    if allowed:
        remedy += f" Fields here: {', '.join(allowed)}"
    return Finding("unknown_field", path, f"unknown field {name!r}", remedy)


def _fields_at(loc: Sequence[int | str]) -> list[str]:
    """The fields of the model at `loc` (list indexes are skipped), if any."""
    model: Any = PipelineConfig
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if _is_model(model) else None
        model = _model_in(info.annotation) if info is not None else None
    return list(model.model_fields) if _is_model(model) else []


def _model_in(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    return next((arg for arg in get_args(annotation) if _is_model(arg)), None)


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _expected_type(kind: str) -> str | None:
    prefix, _, rest = kind.partition("_")
    is_type_error = rest in ("type", "parsing") or kind == "int_from_float"
    return _EXPECTED.get(prefix) if is_type_error else None


# --- adapters ---------------------------------------------------------------------------


def _adapter_findings(document: dict[str, Any], catalog: AdapterCatalog) -> list[Finding]:
    known: dict[str, bool] = {}  # each name is looked up once, however often it is used
    findings = []
    for path, name in itertools.islice(_adapter_refs(document), MAX_ADAPTER_REFS):
        if name not in known:
            known[name] = catalog.knows(name)
        if not known[name]:
            findings.append(_unknown_adapter(path, name, catalog))
    return findings


def _adapter_refs(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(path, name) of every adapter named in the document, even an invalid one."""
    for i, step in enumerate(_list(document.get("steps"))):
        adapters = step.get("adapters") if isinstance(step, dict) else None
        for j, ref in enumerate(_list(adapters)):
            name = ref.get("name") if isinstance(ref, dict) else None
            if isinstance(name, str) and name:
                yield f"steps[{i}].adapters[{j}].name", name


def _unknown_adapter(path: str, name: str, catalog: AdapterCatalog) -> Finding:
    close = catalog.suggestion(name)
    hint = f"did you mean {close!r}? " if close else ""
    return Finding("unknown_adapter", path, f"no worker knows adapter {name!r}",
                   f"{hint}use a registered adapter, a handler of a loaded pipeline file, "
                   "or an importable 'module:function' path")


# --- item schemas -----------------------------------------------------------------------


def schema_warnings(config: PipelineConfig) -> list[Finding]:
    """`stage_type_mismatch` where a step's input_schema and the output_schema of
    the step writing its input stage both declare a type, and no type is shared."""
    warnings = []
    for index, step in enumerate(config.steps):
        upstream = config.layout.upstream[index]
        producer = None if upstream is None else config.steps[upstream]
        if producer is not None and types_disagree(producer.output_schema, step.input_schema):
            warnings.append(Finding(
                "stage_type_mismatch", f"steps[{index}].input_schema",
                f"step {step.name!r} reads {_types(step.input_schema)} items from stage "
                f"{step.input!r}, but step {producer.name!r} declares it writes "
                f"{_types(producer.output_schema)} items",
                "make the two schemas agree, or fix the step that declares the wrong one"))
    return warnings


def _types(schema: dict[str, Any] | None) -> str:
    return " or ".join(sorted(declared_types(schema) or ()))


# --- paths and types --------------------------------------------------------------------


def _path(loc: Sequence[int | str]) -> str:
    """('steps', 2, 'adapters', 0, 'name') -> 'steps[2].adapters[0].name'."""
    path = ""
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path


def _join(path: str, key: str) -> str:
    if not _IDENTIFIER.match(key):
        return f"{path}[{orjson.dumps(key).decode()}]"
    return f"{path}.{key}" if path else key


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
