"""Item schemas: derived from handler annotations by the SDK, carried by the
config, checked as JSON Schemas, and applied to items when a replay is planned."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from pydantic import BaseModel

from stageline.adapters.registry import registered_names
from stageline.domain.config import PipelineConfig, StepConfig
from stageline.domain.graph import GraphError
from stageline.domain.item_schemas import (
    declared_types,
    item_problem,
    schema_problem,
    types_disagree,
)
from stageline.domain.replay import (
    ReplayRejected,
    ReplaySource,
    check_item_shapes,
    plan_replay,
    shape_warnings,
)
from stageline.domain.validation import AdapterCatalog, validate_config
from stageline.sdk.context import StepContext
from stageline.sdk.pipeline import Pipeline

if TYPE_CHECKING:
    from stageline.sdk.context import StepContext as OnlyForTypeCheckers


class Chunk(BaseModel):
    """One segment of a document."""

    text: str
    index: int = 0


@dataclasses.dataclass
class Vector:
    values: list[float]


CHUNK = {"description": "One segment of a document.", "properties": {
    "text": {"title": "Text", "type": "string"},
    "index": {"default": 0, "title": "Index", "type": "integer"}},
    "required": ["text"], "title": "Chunk", "type": "object"}


def segment(doc: dict[str, Any]) -> list[Chunk]:
    return [Chunk(text=doc["text"])]


def embed(chunk: Chunk, ctx: StepContext) -> Vector:
    return Vector([float(len(chunk.text))])


def index(vectors: list[Vector]) -> int:
    return len(vectors)


def untyped(item, ctx):  # type: ignore[no-untyped-def]
    return item


def anything(item: Any) -> Any:
    return item


def hidden_context(item: int, ctx: OnlyForTypeCheckers) -> str:
    return str(item)


def streamed(doc: str) -> Iterator[int]:
    yield len(doc)


def pairs(doc: str) -> tuple[int, str]:
    return 1, doc


def mapped(doc: str) -> Iterable[tuple[str, int]]:
    return [(doc, 1)]


class Opaque:
    pass


def opaque(item: Opaque) -> Opaque:
    return item


def typed() -> Pipeline:
    p = Pipeline("typed")
    p.step(output="chunks", fan_out=True)(segment)
    p.step(output="vectors")(embed)
    p.step(output="count", collect=True)(index)
    return p


def schemas(p: Pipeline) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    return [(s.input_schema, s.output_schema) for s in p.config.steps]


# --- derived from annotations ------------------------------------------------------------


def test_schemas_come_from_the_item_parameter_and_the_return_annotation() -> None:
    assert schemas(typed()) == [
        ({"type": "object", "additionalProperties": True}, CHUNK),  # fan_out: each Chunk
        (CHUNK, {"properties": {"values": {"items": {"type": "number"}, "title": "Values",
                                           "type": "array"}},
                 "required": ["values"], "title": "Vector", "type": "object"}),
        ({"properties": {"values": {"items": {"type": "number"}, "title": "Values",
                                    "type": "array"}},
          "required": ["values"], "title": "Vector", "type": "object"},  # collect: each Vector
         {"type": "integer"}),
    ]


@pytest.mark.parametrize(("fn", "options", "expected"), [
    (untyped, {}, (None, None)),
    (anything, {}, (None, None)),
    (opaque, {}, (None, None)),  # Pydantic cannot describe it
    (hidden_context, {}, ({"type": "integer"}, {"type": "string"})),
    (streamed, {"fan_out": True}, ({"type": "string"}, {"type": "integer"})),
    (pairs, {"fan_out": True}, ({"type": "string"}, None)),  # not a list of items
    (mapped, {"fan_out": True}, ({"type": "string"}, {
        "type": "array", "maxItems": 2, "minItems": 2,
        "prefixItems": [{"type": "string"}, {"type": "integer"}]})),
    (segment, {"collect": True}, (None, {"type": "array", "items": {
        "$ref": "#/$defs/Chunk"}, "$defs": {"Chunk": CHUNK}})),  # dict is not a list
])
def test_what_cannot_be_described_gives_no_schema(fn: Any, options: dict[str, Any],
                                                  expected: tuple[Any, Any]) -> None:
    p = Pipeline("p")
    p.step(output="out", **options)(fn)
    assert schemas(p) == [expected]


def test_a_chain_reads_like_its_first_adapter_and_writes_like_its_last() -> None:
    p = Pipeline("p")
    p.step(output="out", adapters=[embed])(index)  # embed reads a Chunk; index returns int
    p.step(output="named", name="named", adapters=["html_to_markdown"])(index)  # a name
    assert schemas(p) == [(CHUNK, {"type": "integer"}), (None, {"type": "integer"})]
    p.add_step("library", output="lib", adapters=["segment_markdown", "embed"])
    assert schemas(p)[-1] == (None, None)


def test_adapter_parameters_are_not_the_item() -> None:
    def scaled(factor: float, value: int) -> int:
        return int(value * factor)

    p = Pipeline("p")
    p.add_step("scale", output="out", adapters=[(scaled, {"factor": 2.0})])
    assert schemas(p) == [({"type": "integer"}, {"type": "integer"})]


def test_explicit_schemas_win_even_when_none() -> None:
    p = Pipeline("p")
    p.step(output="a", input_schema={"type": "object", "required": ["text"]})(embed)
    p.step(output="b", name="b", output_schema=None)(embed)
    p.add_step("c", output="c", adapters=[embed], input_schema=None,
               output_schema={"type": "object"})
    assert schemas(p)[0][0] == {"type": "object", "required": ["text"]}
    assert schemas(p)[1] == (CHUNK, None)
    assert schemas(p)[2] == (None, {"type": "object"})


def test_derivation_is_deterministic() -> None:
    first, second = typed().config, typed().config
    assert first.snapshot() == second.snapshot()
    assert first.config_hash() == second.config_hash()
    assert PipelineConfig.model_validate(first.snapshot()).config_hash() == first.config_hash()


def test_an_invalid_explicit_schema_is_refused_when_the_step_is_added() -> None:
    p = Pipeline("p")
    with pytest.raises(GraphError) as err:
        p.step(output="out", input_schema={"type": "integr"})(embed)
    assert [(f.code, f.path) for f in err.value.findings] == [
        ("invalid_item_schema", "steps[0].input_schema")]
    with pytest.raises(GraphError):
        p.step(output="out", output_schema={"properties": {"a": {"type": 3}}})(embed)
    assert repr(p) == "Pipeline('p', steps=[])"  # nothing was added


def test_an_invalid_schema_makes_the_config_invalid() -> None:
    with pytest.raises(GraphError) as err:
        PipelineConfig.model_validate({"name": "p", "steps": [
            {"name": "a", "input": "input", "output": "x", "adapters": [{"name": "m:f"}],
             "output_schema": {"minimum": "zero"}}]})
    assert [(f.code, f.path) for f in err.value.findings] == [
        ("invalid_item_schema", "steps[0].output_schema")]


# --- the config carries them ------------------------------------------------------------


def test_a_config_without_schemas_keeps_its_snapshot_and_hash() -> None:
    config = PipelineConfig.model_validate({"name": "p", "steps": [
        {"name": "a", "input": "input", "output": "x", "adapters": [{"name": "m:f"}]}]})
    assert "input_schema" not in config.snapshot()["steps"][0]
    assert "output_schema" not in config.snapshot()["steps"][0]
    # the hash this document had before item schemas existed: no new version
    assert config.config_hash() == (
        "301d7d315aa5171425b15a2162cb611f67aa44d40644199b54d4ea3ba3ba9579")


def test_yaml_declares_schemas_and_round_trips() -> None:
    written = yaml.safe_load("""
        name: p
        steps:
          - name: embed
            input: input
            output: vectors
            adapters: [{name: "m:f"}]
            input_schema: {type: object, required: [text], properties: {text: {type: string}}}
            output_schema: {type: array, items: {type: number}}
    """)
    config = PipelineConfig.model_validate(written)
    assert config.steps[0].input_schema == written["steps"][0]["input_schema"]
    again = PipelineConfig.model_validate(yaml.safe_load(yaml.safe_dump(config.snapshot())))
    assert again == config and again.config_hash() == config.config_hash()
    changed = written | {"steps": [written["steps"][0] | {"output_schema": {"type": "array"}}]}
    assert PipelineConfig.model_validate(changed).config_hash() != config.config_hash()


def test_the_example_in_the_concepts_page_is_valid() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "concepts.md").read_text()
    section = page.split("### Item schemas", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    report = validate_config(yaml.safe_load(block.group(1)),
                             AdapterCatalog(frozenset(registered_names())))
    assert report.valid and report.config is not None
    assert report.config.steps[0].input_schema == {
        "type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}


def test_schemas_are_stored_as_plain_json() -> None:
    step = StepConfig(name="a", input="input", output="x", adapters=[{"name": "m:f"}],
                      input_schema={"enum": ("a", "b")})  # type: ignore[list-item]
    assert step.input_schema == {"enum": ["a", "b"]}
    with pytest.raises(ValueError):
        StepConfig(name="a", input="input", output="x", adapters=[{"name": "m:f"}],  # type: ignore[list-item]
                   input_schema={"default": {1, 2}})


# --- schemas and items ------------------------------------------------------------------


@pytest.mark.parametrize(("schema", "problem"), [
    ({"type": "integr"}, "at $.type: 'integr' is not valid under any of the given schemas"),
    ({"properties": {"a": {"pattern": "("}}}, "at $.properties.a.pattern: '(' is not a 'regex'"),
    ({"$schema": 7}, "at $['$schema']: 7 is not of type 'string'"),
    ({"items": {"$ref": "https://example.com/item.json"}},
     "at $.items['$ref']: 'https://example.com/item.json' refers outside the schema; only "
     "local '#...' references are allowed"),
])
def test_schema_problems(schema: dict[str, Any], problem: str) -> None:
    assert schema_problem(schema) == problem


def test_valid_schemas_have_no_problem() -> None:
    assert schema_problem(CHUNK) is None
    assert schema_problem({"$schema": "http://json-schema.org/draft-07/schema#",
                           "type": "object", "definitions": {"a": {"type": "string"}},
                           "properties": {"a": {"$ref": "#/definitions/a"}}}) is None


def test_item_problems_name_the_place_and_the_reason() -> None:
    assert item_problem(CHUNK, {"text": "x"}) is None
    assert item_problem(CHUNK, {"index": 1}) == "'text' is a required property"
    assert item_problem(CHUNK, {"text": 5}) == "at $.text: 5 is not of type 'string'"
    assert item_problem({"type": "string", "format": "binary"}, b"\x89PNG") is None
    assert item_problem({"type": "object"}, b"\x00") == "'\\x00' is not of type 'object'"
    long = item_problem({"type": "object"}, "x" * 1000)
    assert long is not None and len(long) == 300 and long.endswith("…")


def test_an_unresolvable_reference_is_reported_not_raised() -> None:
    problem = item_problem({"$ref": "#/$defs/missing"}, 1)
    assert problem is not None and problem.startswith("the schema cannot be applied")


@pytest.mark.parametrize(("produced", "consumed", "disagree"), [
    ({"type": "string"}, {"type": "object"}, True),
    ({"type": "integer"}, {"type": "number"}, False),
    ({"type": ["string", "null"]}, {"anyOf": [{"type": "null"}, {"type": "object"}]}, False),
    ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, {"type": "string"}, True),
    ({"$ref": "#/$defs/Chunk", "$defs": {"Chunk": CHUNK}}, {"type": "array"}, True),
    ({"enum": [1, 2]}, {"type": "string"}, False),  # no plain type: not obvious
    (None, {"type": "string"}, False),
])
def test_types_disagree_only_when_obvious(produced: dict[str, Any] | None,
                                          consumed: dict[str, Any], disagree: bool) -> None:
    assert types_disagree(produced, consumed) is disagree


def test_declared_types() -> None:
    assert declared_types(CHUNK) == {"object"}
    assert declared_types({}) is None
    assert declared_types(None) is None


# --- replay planning --------------------------------------------------------------------


def step(name: str, input: str, output: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "input": input, "output": output,
            "adapters": [{"name": "m:f"}], **options}


def config(*steps: dict[str, Any], name: str = "p") -> PipelineConfig:
    return PipelineConfig.model_validate({"name": name, "steps": list(steps)})


INT = {"type": "integer"}


def test_sampled_items_must_fit_the_routes_input_schema() -> None:
    route = config(step("r", "input", "x", input_schema=CHUNK)).steps[0]
    check_item_shapes(route, "input", [("0", {"text": "a"}), ("1", {"text": "b"})])
    with pytest.raises(ReplayRejected) as err:
        check_item_shapes(route, "input", [("0", {"text": "a"}), ("1", {}), ("2", 3)])
    assert err.value.code == "item_shape_mismatch"
    assert str(err.value) == ("2 of 3 sampled items of stage 'input' do not fit the "
                              "input_schema of route 'r'; item '1': 'text' is a required "
                              "property")
    check_item_shapes(config(step("r", "input", "x")).steps[0], "input", [("0", 3)])


def test_a_reused_stage_written_with_another_shape_is_a_warning() -> None:
    parent = config(step("a", "input", "x", output_schema=INT), step("b", "x", "y"),
                    step("c", "y", "z"))
    child = config(step("a", "input", "x", output_schema={"type": "string"}),
                   step("b", "x", "y"), step("c", "y", "z"))
    plan = plan_replay(parent, child, "x", "b", ReplaySource.STORAGE, None)
    assert shape_warnings(parent, child, plan) == [(
        "stage_shape_changed", "stage 'x' is reused from the parent: the parent's step 'a' "
        "declared another output_schema than step 'a' of the chosen config")]
    assert shape_warnings(parent, parent, plan) == []
    undeclared = config(step("a", "input", "x"), step("b", "x", "y"), step("c", "y", "z"))
    assert shape_warnings(parent, undeclared, plan) == []  # nothing declared: nothing known


def test_a_filled_stage_of_another_shape_mixes_both() -> None:
    parent = config(step("a", "input", "x", fan_out=True), step("b", "x", "y",
                                                                 output_schema=INT))
    child = config(step("a", "input", "x", fan_out=True),
                   step("b", "x", "y", output_schema={"type": "string"}))
    plan = plan_replay(parent, child, "x", "b", ReplaySource.LINEAGE, None)
    [(code, message)] = shape_warnings(parent, child, plan)
    assert code == "stage_shape_changed" and "mixes both shapes" in message


def test_a_stage_the_chosen_config_dropped_is_a_warning() -> None:
    parent = config(step("a", "input", "x"), step("b", "x", "y"), step("c", "y", "z"))
    child = config(step("a", "input", "x"), step("c", "x", "z"))
    plan = plan_replay(parent, child, "x", "c", ReplaySource.STORAGE, None)
    assert shape_warnings(parent, child, plan) == [(
        "stage_removed", "stage 'y' (written by the parent's step 'b') is not a stage of the "
        "chosen config: the replay will not have it")]
