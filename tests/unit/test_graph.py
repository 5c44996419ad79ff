"""Pipeline configs (stageline.domain.config) and their graphs (stageline.domain.graph)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from pydantic import ValidationError

from stageline.domain.config import AdapterRef, Backoff, PipelineConfig, StepConfig
from stageline.domain.graph import (
    ENTRY_STAGE,
    Finding,
    GraphError,
    graph_findings,
    producer_index,
    topological_order,
)


def step(name: str, input: str, output: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "input": input, "output": output,
            "adapters": [{"name": f"mod:{name}"}], **options}


def config(*steps: dict[str, Any], name: str = "docs-ingest") -> dict[str, Any]:
    return {"name": name, "steps": list(steps)}


def graph_error(data: dict[str, Any]) -> GraphError:
    with pytest.raises(GraphError) as info:
        PipelineConfig.model_validate(data)
    return info.value


def codes(err: GraphError) -> list[str]:
    return [f.code for f in err.findings]


LINEAR = config(
    step("fetch", "input", "html"),
    step("to_markdown", "html", "markdown"),
    step("segment", "markdown", "chunks", fan_out=True),
    step("embed", "chunks", "vectors"),
    step("index", "vectors", "indexed", collect=True),
)


# --- valid configs -----------------------------------------------------------------------


def test_entry_stage_is_input() -> None:
    assert ENTRY_STAGE == "input"


def test_valid_config_builds() -> None:
    cfg = PipelineConfig.model_validate(LINEAR)
    assert [s.name for s in cfg.steps] == ["fetch", "to_markdown", "segment", "embed", "index"]
    assert cfg.step("segment").fan_out is True
    assert cfg.step("index").collect is True
    assert graph_findings(cfg) == []


def test_step_defaults() -> None:
    s = PipelineConfig.model_validate(config(step("a", "input", "x"))).steps[0]
    assert (s.fan_out, s.collect, s.review, s.cache) == (False, False, False, False)
    assert (s.retries, s.timeout, s.queue, s.priority) == (0, None, "default", 0)
    assert s.concurrency_key is None
    assert s.concurrency_limit is None
    assert s.backoff == Backoff()
    assert s.adapters == [AdapterRef(name="mod:a")]


def test_step_lookup_unknown_name_raises_key_error() -> None:
    cfg = PipelineConfig.model_validate(LINEAR)
    with pytest.raises(KeyError):
        cfg.step("nope")


def test_steps_may_be_listed_out_of_order() -> None:
    cfg = PipelineConfig.model_validate(config(
        step("b", "x", "y"),
        step("a", "input", "x"),
    ))
    assert [s.name for s in topological_order(cfg.steps)] == ["a", "b"]


def test_branching_graph_is_valid() -> None:
    cfg = PipelineConfig.model_validate(config(
        step("a", "input", "x"),
        step("b", "x", "y"),
        step("c", "x", "z"),
        step("d", "input", "w"),
    ))
    assert len(cfg.steps) == 4


def test_config_is_frozen() -> None:
    cfg = PipelineConfig.model_validate(LINEAR)
    with pytest.raises(ValidationError):
        cfg.name = "other"  # type: ignore[misc]


# --- graph findings ------------------------------------------------------------------------


def test_unknown_input_stage() -> None:
    err = graph_error(config(step("a", "input", "x"), step("b", "nope", "y")))
    assert codes(err) == ["unknown_input_stage"]
    finding = err.findings[0]
    assert finding.path == "steps[1].input"
    assert "'b'" in finding.message
    assert "'nope'" in finding.message
    assert finding.remedy == "use one of: input, x, y"


def test_two_steps_writing_one_stage() -> None:
    err = graph_error(config(step("a", "input", "x"), step("b", "x", "y"), step("c", "x", "y")))
    assert codes(err) == ["stage_written_twice"]
    finding = err.findings[0]
    assert finding.path == "steps[2].output"
    assert "'b'" in finding.message
    assert "'c'" in finding.message
    assert "'y'" in finding.message


def test_cycle_where_every_input_is_written() -> None:
    # a is fine; b and c feed each other and neither leads back to 'input'
    err = graph_error(config(
        step("a", "input", "x"),
        step("b", "z", "y"),
        step("c", "y", "z"),
    ))
    assert codes(err) == ["cycle", "cycle"]
    assert [f.path for f in err.findings] == ["steps[1]", "steps[2]"]
    assert "'b'" in err.findings[0].message
    assert "'c'" in err.findings[1].message
    assert all("cycle" in f.message for f in err.findings)


def test_longer_cycle_names_every_member() -> None:
    err = graph_error(config(
        step("p", "r_out", "p_out"),
        step("q", "p_out", "q_out"),
        step("r", "q_out", "r_out"),
    ))
    assert codes(err) == ["cycle"] * 3
    for name, finding in zip("pqr", err.findings, strict=True):
        assert f"'{name}'" in finding.message


def test_unknown_input_findings_come_before_cycles() -> None:
    # with an unknown input present, cycle detection is not reported at all
    err = graph_error(config(
        step("a", "nope", "w"),
        step("b", "z", "y"),
        step("c", "y", "z"),
    ))
    assert codes(err) == ["unknown_input_stage"]


def test_duplicate_step_name() -> None:
    err = graph_error(config(step("a", "input", "x"), step("a", "x", "y")))
    assert codes(err) == ["duplicate_step_name"]
    assert err.findings[0].path == "steps[1].name"
    assert "'a'" in err.findings[0].message


def test_fan_out_and_collect() -> None:
    err = graph_error(config(step("a", "input", "x", fan_out=True, collect=True)))
    assert codes(err) == ["fan_out_and_collect"]
    assert err.findings[0].path == "steps[0]"
    assert "'a'" in err.findings[0].message


def test_output_named_input() -> None:
    err = graph_error(config(step("a", "input", "x"), step("b", "x", "input")))
    assert codes(err) == ["output_is_entry_stage"]
    assert err.findings[0].path == "steps[1].output"
    assert "'b'" in err.findings[0].message


def test_step_reads_own_output() -> None:
    err = graph_error(config(step("a", "input", "x"), step("b", "y", "y")))
    assert codes(err) == ["step_reads_own_output"]
    assert err.findings[0].path == "steps[1].input"
    assert "'b'" in err.findings[0].message


def test_several_findings_are_all_reported() -> None:
    err = graph_error(config(
        step("a", "input", "x"),
        step("a", "x", "x"),
        step("c", "ghost", "x", fan_out=True, collect=True),
    ))
    assert sorted(codes(err)) == sorted([
        "duplicate_step_name", "stage_written_twice", "stage_written_twice",
        "step_reads_own_output", "fan_out_and_collect", "unknown_input_stage",
    ])


def test_graph_error_shape() -> None:
    err = graph_error(config(step("a", "input", "x"), step("b", "nope", "y")))
    assert err.pipeline == "docs-ingest"
    assert all(isinstance(f, Finding) for f in err.findings)
    assert all(f.remedy for f in err.findings)
    assert str(err).startswith("pipeline 'docs-ingest' is invalid: steps[1].input: step 'b'")
    assert not isinstance(err, ValueError)  # escapes pydantic unwrapped


STABLE_CODES = {
    "duplicate_step_name", "stage_written_twice", "output_is_entry_stage",
    "fan_out_and_collect", "step_reads_own_output", "unknown_input_stage", "cycle",
}


@pytest.mark.parametrize(
    "data",
    [
        config(step("a", "input", "x"), step("a", "x", "y")),
        config(step("a", "input", "x"), step("b", "input", "x")),
        config(step("a", "input", "input")),
        config(step("a", "input", "x", fan_out=True, collect=True)),
        config(step("a", "input", "x"), step("b", "x", "x")),
        config(step("a", "ghost", "x")),
        config(step("a", "input", "x"), step("b", "z", "y"), step("c", "y", "z")),
    ],
)
def test_codes_are_stable_snake_case(data: dict[str, Any]) -> None:
    err = graph_error(data)
    assert err.findings
    for finding in err.findings:
        assert finding.code in STABLE_CODES
        assert re.fullmatch(r"[a-z_]+", finding.code)
        assert re.search(r"step '[a-z]'", finding.message) or "steps 'a'" in finding.message


# --- ordering -----------------------------------------------------------------------------


def _steps(*specs: tuple[str, str, str]) -> list[StepConfig]:
    return [StepConfig.model_validate(step(*spec)) for spec in specs]


def test_topological_order_puts_producers_first() -> None:
    steps = _steps(("d", "c_out", "d_out"), ("c", "b_out", "c_out"),
                   ("b", "a_out", "b_out"), ("a", "input", "a_out"))
    assert [s.name for s in topological_order(steps)] == ["a", "b", "c", "d"]


def test_topological_order_is_stable() -> None:
    steps = _steps(("c", "a_out", "c_out"), ("a", "input", "a_out"),
                   ("b", "a_out", "b_out"), ("z", "input", "z_out"))
    # among ready steps the config's order wins: a before z, then c before b
    assert [s.name for s in topological_order(steps)] == ["a", "c", "b", "z"]
    assert topological_order(steps) == topological_order(list(steps))


def test_topological_order_keeps_a_sorted_config() -> None:
    cfg = PipelineConfig.model_validate(LINEAR)
    assert topological_order(cfg.steps) == cfg.steps


def test_topological_order_every_producer_before_consumer() -> None:
    steps = _steps(("e", "d_out", "e_out"), ("b", "a_out", "b_out"), ("d", "a_out", "d_out"),
                   ("a", "input", "a_out"), ("f", "b_out", "f_out"))
    ordered = topological_order(steps)
    position = {s.output: i for i, s in enumerate(ordered)}
    for i, s in enumerate(ordered):
        assert s.input == ENTRY_STAGE or position[s.input] < i


def test_topological_order_rejects_cycles() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_order(_steps(("a", "y", "x"), ("b", "x", "y")))


def test_producer_index() -> None:
    cfg = PipelineConfig.model_validate(LINEAR)
    assert producer_index(cfg.steps) == {
        "html": 0, "markdown": 1, "chunks": 2, "vectors": 3, "indexed": 4,
    }


# --- hashing and snapshots ---------------------------------------------------------------


def _reverse_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


def test_config_hash_is_stable_under_key_order() -> None:
    data = config(step("a", "input", "x", adapters=[
        {"name": "embed", "params": {"model": "m", "batch": 8, "opts": {"b": 1, "a": 2}}},
    ]))
    first = PipelineConfig.model_validate(data)
    second = PipelineConfig.model_validate(_reverse_keys(data))
    assert list(_reverse_keys(data)) == ["steps", "name"]
    assert first.config_hash() == second.config_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", first.config_hash())


def test_config_hash_is_deterministic() -> None:
    assert (PipelineConfig.model_validate(LINEAR).config_hash()
            == PipelineConfig.model_validate(copy.deepcopy(LINEAR)).config_hash())


def test_config_hash_changes_with_params() -> None:
    def with_model(model: str) -> str:
        data = config(step("a", "input", "x",
                           adapters=[{"name": "embed", "params": {"model": model}}]))
        return PipelineConfig.model_validate(data).config_hash()

    assert with_model("small") != with_model("large")


@pytest.mark.parametrize(
    "change",
    [{"retries": 3}, {"timeout": 5.0}, {"review": True}, {"queue": "gpu"},
     {"backoff": {"initial": 2.0}}],
)
def test_config_hash_changes_with_options(change: dict[str, Any]) -> None:
    base = PipelineConfig.model_validate(config(step("a", "input", "x")))
    changed = PipelineConfig.model_validate(config(step("a", "input", "x", **change)))
    assert base.config_hash() != changed.config_hash()


def test_explicit_defaults_hash_like_omitted_defaults() -> None:
    implicit = PipelineConfig.model_validate(config(step("a", "input", "x")))
    explicit = PipelineConfig.model_validate(config(step("a", "input", "x", retries=0,
                                                         queue="default")))
    assert implicit.config_hash() == explicit.config_hash()


def test_snapshot_round_trips() -> None:
    cfg = PipelineConfig.model_validate(LINEAR)
    snap = cfg.snapshot()
    assert snap["steps"][0]["backoff"] == {
        "initial": 0.5, "maximum": 60.0, "multiplier": 2.0, "jitter": 0.5,
    }
    assert PipelineConfig.model_validate(snap) == cfg


# --- field validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {**config(step("a", "input", "x")), "extra": 1},
        config({**step("a", "input", "x"), "color": "red"}),
        config(step("a", "input", "x", adapters=[{"name": "f", "paramz": {}}])),
        config(step("a", "input", "x", backoff={"initial": 1.0, "factor": 3})),
    ],
    ids=["pipeline", "step", "adapter", "backoff"],
)
def test_extra_fields_are_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=r"[Ee]xtra"):
        PipelineConfig.model_validate(data)


@pytest.mark.parametrize(
    "data",
    [
        config(step("a", "input", "x", adapters=[])),
        config(step("bad name", "input", "x")),
        config(step("a", "input", "x", retries=-1)),
        config(step("a", "input", "x", timeout=0)),
        config(step("a", "input", "x", concurrency_limit=0)),
        config(step("a", "input", "x", backoff={"jitter": 1.5})),
        config(step("a", "input", "x", backoff={"multiplier": 0.5})),
        config(),
        {**config(step("a", "input", "x")), "name": ""},
    ],
)
def test_invalid_fields_are_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PipelineConfig.model_validate(data)
