"""Config validation (stageline.domain.validation): one report, stable codes, every path."""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson
import pytest

from stageline.domain.config import PipelineConfig
from stageline.domain.graph import Finding
from stageline.domain.validation import (
    CODES,
    MAX_DEPTH,
    MAX_NODES,
    AdapterCatalog,
    Format,
    ValidationReport,
    validate_body,
    validate_config,
)

KNOWN = AdapterCatalog(frozenset({"html_to_markdown", "segment_markdown", "embed", "mod:fn"}))
SEEN_CODES: set[str] = set()


def step(name: str, input: str, output: str, *adapters: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "input": input, "output": output,
            "adapters": [{"name": a} for a in adapters or ("mod:fn",)], **options}


def config(*steps: dict[str, Any], name: str = "docs") -> dict[str, Any]:
    return {"name": name, "steps": list(steps)}


VALID = config(
    step("to_markdown", "input", "markdown", "html_to_markdown"),
    step("segment", "markdown", "chunks", "segment_markdown", fan_out=True),
    step("embed", "chunks", "vectors", "embed"),
)

YAML = b"""
name: docs
steps:
  - name: to_markdown
    input: input
    output: markdown
    adapters:
      - name: html_to_markdown
  - name: segment
    input: markdown
    output: chunks
    fan_out: true
    adapters:
      - name: segment_markdown
        params: {max_tokens: 120}
"""


def check(document: Any, catalog: AdapterCatalog = KNOWN) -> list[tuple[str, str]]:
    """(code, path) of each finding; records the codes the suite has seen."""
    report = validate_config(document, catalog)
    return _pairs(report)


def check_body(body: bytes, fmt: Format, catalog: AdapterCatalog = KNOWN) -> list[tuple[str, str]]:
    return _pairs(validate_body(body, fmt, catalog))


def _pairs(report: ValidationReport) -> list[tuple[str, str]]:
    for finding in report.findings:
        assert isinstance(finding, Finding)
        assert finding.code in CODES, finding
        assert finding.message and finding.remedy, finding
        SEEN_CODES.add(finding.code)
    assert report.valid == (not report.findings and report.config is not None)
    return [(f.code, f.path) for f in report.findings]


def edited(path: list[str | int], value: Any, base: dict[str, Any] = VALID) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


def without(path: list[str | int], base: dict[str, Any] = VALID) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return doc


# --- valid configs ------------------------------------------------------------------------


def test_valid_config_gives_an_empty_report_and_the_config() -> None:
    report = validate_config(VALID, KNOWN)
    assert report.valid
    assert report.findings == ()
    assert report.config == PipelineConfig.model_validate(VALID)


def test_json_and_yaml_bodies_give_the_same_config() -> None:
    from_yaml = validate_body(YAML, Format.YAML, KNOWN)
    as_json = orjson.dumps(from_yaml.config.snapshot() if from_yaml.config else None)
    from_json = validate_body(as_json, Format.JSON, KNOWN)
    assert from_yaml.valid and from_json.valid
    assert from_yaml.config == from_json.config


def test_importable_paths_are_asked_once_per_name() -> None:
    asked: list[str] = []

    def importable(name: str) -> bool:
        asked.append(name)
        return name == "pkg.mod:fn"

    catalog = AdapterCatalog(frozenset(), importable)
    doc = config(step("a", "input", "x", "pkg.mod:fn", "pkg.mod:fn"),
                 step("b", "x", "y", "pkg.mod:fn"))
    assert check(doc, catalog) == []
    assert asked == ["pkg.mod:fn"]


def test_names_without_a_colon_are_never_imported() -> None:
    catalog = AdapterCatalog(frozenset(), lambda name: pytest.fail(f"imported {name}"))
    assert check(config(step("a", "input", "x", "os")), catalog) == [
        ("unknown_adapter", "steps[0].adapters[0].name")]


# --- the body -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{", b"", b"[1,]", b"\xff\xfe", b"{\"a\": NaN}"])
def test_invalid_json(body: bytes) -> None:
    assert check_body(body, Format.JSON) == [("invalid_json", "")]


@pytest.mark.parametrize("body", [b"name: [docs", b"a: 1\n b: 2", b"--- 1\n--- 2\n",
                                  b"!!python/object:os.system {}", b"\xff\xfe\x00"])
def test_invalid_yaml(body: bytes) -> None:
    assert check_body(body, Format.YAML) == [("invalid_yaml", "")]


def test_yaml_errors_say_where() -> None:
    report = validate_body(b"name: docs\nsteps: [\n", Format.YAML, KNOWN)
    assert "line 3" in report.findings[0].message


@pytest.mark.parametrize("body", [
    b"[" * 1_000_000,  # libyaml's composer would overflow the C stack
    b"{a: " * 5000 + b"1" + b"}" * 5000,
    b"- " * 100_000 + b"x",
    b"a:\n" + b"".join(b" " * i + b"a:\n" for i in range(1, 200)),
    b"[" + b"x," * (2 * MAX_NODES) + b"]",  # refused before it is built
], ids=["flow-sequences", "flow-mappings", "block-sequences", "block-mappings", "wide"])
def test_deep_or_huge_yaml_is_refused_quickly(body: bytes) -> None:
    started = time.monotonic()
    assert check_body(body, Format.YAML) == [("document_too_large", "")]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("body", [
    b"[" * 1200,  # libyaml 0.2.6 refuses 1000 levels while reading ahead, before any event
    b"[" * 100 + b'"unterminated',  # the scanner fails while reading ahead
    b"a: " + b"[" * 2000 + b"}",
], ids=["over-libyaml-limit", "error-in-lookahead", "error-after"])
def test_too_deep_before_a_syntax_error_is_too_large(body: bytes) -> None:
    assert check_body(body, Format.YAML) == [("document_too_large", "")]


@pytest.mark.parametrize("document", [None, [], "docs", 3, True])
def test_the_config_must_be_an_object(document: Any) -> None:
    assert check(document) == [("invalid_type", "")]


def test_an_empty_yaml_body_is_not_a_config() -> None:
    assert check_body(b"", Format.YAML) == [("invalid_type", "")]


def test_yaml_alias_bomb_is_too_large() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = "\n".join(["name: docs", "steps:", "  - name: a", "    input: input",
                      "    output: b", "    adapters:", "      - name: mod:fn",
                      "        params:", *[f"          {line}" for line in lines]])
    assert check_body(bomb.encode(), Format.YAML) == [("document_too_large", "")]


def test_recursive_yaml_is_too_large() -> None:
    body = b"name: docs\nsteps: &s\n  - *s\n"
    assert check_body(body, Format.YAML) == [("document_too_large", "")]


def test_json_nested_beyond_the_parser_is_invalid() -> None:
    assert check_body(b"[" * 5000 + b"]" * 5000, Format.JSON) == [("invalid_json", "")]


def test_too_deep_json_is_too_large() -> None:
    nested: Any = 1
    for _ in range(MAX_DEPTH + 1):
        nested = {"k": nested}
    doc = edited(["steps", 0, "adapters", 0, "params"], nested)
    assert check(doc) == [("document_too_large", "")]


@pytest.mark.parametrize(("params", "path"), [
    ("{when: 2024-01-02}", "steps[0].adapters[0].params.when"),
    ("{bad: .nan}", "steps[0].adapters[0].params.bad"),
    ("{big: -.inf}", "steps[0].adapters[0].params.big"),
    ("{blob: !!binary aGk=}", "steps[0].adapters[0].params.blob"),
    ("{tags: !!set {a, b}}", "steps[0].adapters[0].params.tags"),
    ("{1: one}", "steps[0].adapters[0].params"),
    ('{"odd key": 2020-01-01}', 'steps[0].adapters[0].params["odd key"]'),
])
def test_values_json_cannot_hold_are_refused(params: str, path: str) -> None:
    body = ("name: docs\nsteps:\n  - {name: a, input: input, output: b, "
            f"adapters: [{{name: 'mod:fn', params: {params}}}]}}\n")
    assert check_body(body.encode(), Format.YAML) == [("unsupported_value", path)]


# --- the config model ---------------------------------------------------------------------


def test_missing_fields() -> None:
    assert check(without(["steps", 1, "output"])) == [("missing_field", "steps[1].output")]
    assert check({"steps": VALID["steps"]}) == [("missing_field", "name")]
    assert check(without(["steps", 0, "adapters", 0, "name"])) == [
        ("missing_field", "steps[0].adapters[0].name")]


def test_unknown_fields_suggest_the_closest() -> None:
    doc = edited(["steps", 1, "fanout"], True)
    report = validate_config(doc, KNOWN)
    assert _pairs(report) == [("unknown_field", "steps[1].fanout")]
    assert "'fan_out'" in report.findings[0].remedy
    assert check(edited(["steps", 0, "backoff"], {"inital": 1})) == [
        ("unknown_field", "steps[0].backoff.inital")]
    assert check(edited(["version"], 2)) == [("unknown_field", "version")]


def test_unknown_field_remedy_lists_the_fields_of_that_object() -> None:
    report = validate_config(edited(["steps", 0, "adapters", 0, "zzz"], 1), KNOWN)
    assert report.findings[0].remedy.endswith("Fields here: name, params")


@pytest.mark.parametrize(("path", "value"), [
    (["name"], "docs ingest"),
    (["steps", 0, "name"], "9lives"),
    (["steps", 1, "output"], "a/b"),
    (["steps", 2, "queue"], ""),
])
def test_invalid_names(path: list[str | int], value: str) -> None:
    expected = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    assert check(edited(path, value)) == [("invalid_name", expected)]


@pytest.mark.parametrize(("path", "value"), [
    (["steps", 0, "retries"], "three"),
    (["steps", 0, "retries"], 1.5),
    (["steps", 0, "fan_out"], "maybe"),
    (["steps", 0, "backoff"], 3),
    (["steps", 0, "adapters"], {"name": "embed"}),
    (["steps", 0, "adapters", 0], "embed"),
    (["steps", 0, "adapters", 0, "params"], []),
    (["steps"], "all"),
    (["description"], 7),
])
def test_invalid_types(path: list[str | int], value: Any) -> None:
    codes = check(edited(path, value))
    assert [code for code, _ in codes] == ["invalid_type"]


def test_invalid_type_says_what_was_expected() -> None:
    report = validate_config(edited(["steps", 0, "retries"], "three"), KNOWN)
    assert report.findings[0].message == "expected an integer, got a string"
    assert report.findings[0].remedy == "give an integer"


@pytest.mark.parametrize(("path", "value"), [
    (["steps", 0, "retries"], -1),
    (["steps", 0, "retries"], 1000),
    (["steps", 0, "timeout"], 0),
    (["steps", 0, "backoff"], {"multiplier": 0.5}),
    (["steps", 0, "adapters"], []),
    (["steps"], []),
    (["description"], "x" * 2001),
    (["steps", 0, "adapters", 0, "name"], ""),
])
def test_invalid_values(path: list[str | int], value: Any) -> None:
    codes = check(edited(path, value))
    assert [code for code, _ in codes] == ["invalid_value"]


def test_every_model_finding_is_reported_at_once() -> None:
    doc = edited(["steps", 0, "retries"], -1, edited(["steps", 2, "colect"], True))
    assert check(doc) == [("invalid_value", "steps[0].retries"),
                          ("unknown_field", "steps[2].colect")]


# --- the graph ----------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "expected"), [
    ([step("a", "input", "x"), step("a", "x", "y")], [("duplicate_step_name", "steps[1].name")]),
    ([step("a", "input", "x"), step("b", "input", "x")],
     [("stage_written_twice", "steps[1].output")]),
    ([step("a", "input", "x"), step("b", "x", "input")],
     [("output_is_entry_stage", "steps[1].output")]),
    ([step("a", "input", "x"), step("b", "html", "y")],
     [("unknown_input_stage", "steps[1].input")]),
    ([step("a", "input", "x"), step("b", "x", "y", fan_out=True, collect=True)],
     [("fan_out_and_collect", "steps[1]")]),
    ([step("a", "input", "x"), step("b", "y", "y")],
     [("step_reads_own_output", "steps[1].input")]),
    ([step("a", "input", "x"), step("b", "z", "y"), step("c", "y", "z")],
     [("cycle", "steps[1]"), ("cycle", "steps[2]")]),
])
def test_graph_findings(steps: list[dict[str, Any]], expected: list[tuple[str, str]]) -> None:
    assert check(config(*steps)) == expected


# --- adapters -----------------------------------------------------------------------------


def test_unknown_adapter_is_refused_with_a_suggestion() -> None:
    doc = edited(["steps", 1, "adapters", 0, "name"], "segment_markdwn")
    report = validate_config(doc, KNOWN)
    assert _pairs(report) == [("unknown_adapter", "steps[1].adapters[0].name")]
    assert "'segment_markdown'" in report.findings[0].remedy
    assert report.config is not None
    assert not report.valid


def test_unknown_import_path_is_refused() -> None:
    doc = edited(["steps", 0, "adapters", 0, "name"], "nowhere.module:fn")
    assert check(doc) == [("unknown_adapter", "steps[0].adapters[0].name")]


def test_unknown_adapters_are_reported_beside_model_findings() -> None:
    doc = edited(["steps", 0, "retries"], -1,
                 edited(["steps", 2, "adapters", 0, "name"], "embedd"))
    assert check(doc) == [("invalid_value", "steps[0].retries"),
                          ("unknown_adapter", "steps[2].adapters[0].name")]


def test_unknown_adapters_are_reported_beside_graph_findings() -> None:
    doc = config(step("a", "input", "x", "nope"), step("a", "x", "y"))
    assert check(doc) == [("duplicate_step_name", "steps[1].name"),
                          ("unknown_adapter", "steps[0].adapters[0].name")]


# --- item schemas -------------------------------------------------------------------------


def warned(document: Any) -> list[tuple[str, str]]:
    """(code, path) of each warning of a valid config; records the codes seen."""
    report = validate_config(document, KNOWN)
    assert report.valid, report.findings
    for warning in report.warnings:
        assert warning.code in CODES and warning.message and warning.remedy, warning
        SEEN_CODES.add(warning.code)
    return [(w.code, w.path) for w in report.warnings]


def test_declared_item_schemas_are_valid() -> None:
    doc = edited(["steps", 1, "output_schema"], {"type": "string"},
                 edited(["steps", 2, "input_schema"], {"type": "string", "minLength": 1}))
    assert check(doc) == []
    assert warned(doc) == []


def test_a_schema_that_is_not_a_json_schema_is_an_error() -> None:
    doc = edited(["steps", 1, "input_schema"], {"type": "text"},
                 edited(["steps", 2, "output_schema"], {"items": {"$ref": "http://x/y"}}))
    report = validate_config(doc, KNOWN)
    assert _pairs(report) == [("invalid_item_schema", "steps[1].input_schema"),
                              ("invalid_item_schema", "steps[2].output_schema")]
    assert report.findings[0].message == (
        "step 'segment' declares an input_schema that is not a valid JSON Schema: at $.type: "
        "'text' is not valid under any of the given schemas")
    assert "refers outside the schema" in report.findings[1].message


def test_invalid_schemas_are_reported_beside_graph_findings() -> None:
    doc = config(step("a", "input", "x", input_schema={"minimum": "0"}), step("a", "x", "y"))
    assert check(doc) == [("duplicate_step_name", "steps[1].name"),
                          ("invalid_item_schema", "steps[0].input_schema")]


def test_a_schema_must_be_an_object() -> None:
    assert check(edited(["steps", 0, "input_schema"], "string")) == [
        ("invalid_type", "steps[0].input_schema")]


def test_a_consumer_expecting_another_type_is_a_warning() -> None:
    doc = edited(["steps", 1, "output_schema"], {"type": "string"},
                 edited(["steps", 2, "input_schema"], {"type": "object"}))
    assert warned(doc) == [("stage_type_mismatch", "steps[2].input_schema")]
    report = validate_config(doc, KNOWN)
    assert report.warnings[0].message == (
        "step 'embed' reads object items from stage 'chunks', but step 'segment' declares "
        "it writes string items")
    agreeing = edited(["steps", 2, "input_schema"], {"type": ["string", "null"]}, doc)
    assert warned(agreeing) == []
    undeclared = edited(["steps", 2, "input_schema"], {"required": ["text"]}, doc)
    assert warned(undeclared) == []


# --- the codes ----------------------------------------------------------------------------


def test_zz_every_code_is_exercised_by_this_module() -> None:
    """Runs last in this module (pytest keeps file order): all stable codes were seen."""
    assert SEEN_CODES == CODES
