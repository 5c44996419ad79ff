"""The public SDK shape: `Pipeline` and its `@pipeline.step` decorator."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from stageline.adapters.registry import adapter
from stageline.domain.config import AdapterRef, Backoff, PipelineConfig
from stageline.domain.graph import GraphError
from stageline.sdk.pipeline import Pipeline


def ref_name(fn: Any, pipeline: str = "p", step: str | None = None) -> str:
    """How the SDK names a handler: a function made inside another one is
    qualified by pipeline and step, since its qualified name is not unique."""
    if "<locals>" in fn.__qualname__:
        return f"{fn.__module__}:{pipeline}.{step or fn.__name__}.{fn.__name__}"
    return f"{fn.__module__}:{fn.__qualname__}"


def fetch(url: str) -> str:
    return url


def to_markdown(html: str) -> str:
    return html


def segment(markdown: str) -> list[str]:
    return markdown.split("\n\n")


def strip(text: str) -> str:
    return text.strip()


@adapter("unit_test_sdk_upper")
def upper(text: str) -> str:
    return text.upper()


def docs_ingest() -> Pipeline:
    pipeline = Pipeline("docs-ingest", description="fetch, convert, segment")

    @pipeline.step(output="html")
    def fetch(url: str) -> str:
        return url

    @pipeline.step(output="markdown", adapters=["html_to_markdown"])
    def clean(markdown: str) -> str:
        return markdown

    @pipeline.step(output="chunks", fan_out=True, retries=3, timeout=30)
    def segment(markdown: str) -> list[str]:
        return [markdown]

    @pipeline.step(output="document", collect=True, review=True)
    def join(chunks: list[str]) -> str:
        return "".join(chunks)

    return pipeline


def graph_error_codes(err: pytest.ExceptionInfo[GraphError]) -> list[str]:
    return [f.code for f in err.value.findings]


# --- building steps -------------------------------------------------------------------------


def test_first_step_reads_input() -> None:
    pipeline = Pipeline("docs-ingest")

    @pipeline.step(output="markdown")
    def convert(html: str) -> str:
        return html

    step = pipeline.config.steps[0]
    assert (step.name, step.input, step.output) == ("convert", "input", "markdown")


def test_input_defaults_to_previous_output() -> None:
    cfg = docs_ingest().config
    assert [(s.name, s.input, s.output) for s in cfg.steps] == [
        ("fetch", "input", "html"),
        ("clean", "html", "markdown"),
        ("segment", "markdown", "chunks"),
        ("join", "chunks", "document"),
    ]


def test_explicit_input_overrides_default() -> None:
    pipeline = Pipeline("branches")
    pipeline.step(output="a")(fetch)
    pipeline.step(output="b", name="second")(fetch)
    pipeline.step(output="c", input="a", name="branch")(fetch)
    assert [s.input for s in pipeline.config.steps] == ["input", "a", "a"]


def test_name_overrides_function_name() -> None:
    pipeline = Pipeline("p")
    pipeline.step(output="x", name="convert_html")(to_markdown)
    assert pipeline.config.steps[0].name == "convert_html"
    assert pipeline.config.steps[0].adapters == [AdapterRef(name=ref_name(to_markdown))]


def test_decorator_returns_function_unchanged() -> None:
    pipeline = Pipeline("p")
    decorated = pipeline.step(output="x")(to_markdown)
    assert decorated is to_markdown
    assert decorated("<p>a</p>") == "<p>a</p>"


def test_options_are_recorded() -> None:
    cfg = docs_ingest().config
    segment_step = cfg.step("segment")
    assert segment_step.fan_out is True
    assert segment_step.retries == 3
    assert segment_step.timeout == 30
    join_step = cfg.step("join")
    assert (join_step.collect, join_step.review) == (True, True)
    assert cfg.description == "fetch, convert, segment"


def test_backoff_given_as_dict() -> None:
    pipeline = Pipeline("p")
    pipeline.step(output="x", retries=2, backoff={"initial": 1.0, "jitter": 0})(fetch)
    assert pipeline.config.steps[0].backoff == Backoff(initial=1.0, jitter=0)


# --- adapter chains ------------------------------------------------------------------------


def test_adapter_chain_ends_with_decorated_function() -> None:
    pipeline = Pipeline("p")

    @pipeline.step(
        output="chunks",
        adapters=[
            strip,
            "html_to_markdown",
            ("segment_markdown", {"max_tokens": 200}),
            (segment, {"limit": 3}),
            upper,
            AdapterRef(name="pkg.mod:fn", params={"a": 1}),
        ],
    )
    def finish(chunks: list[str]) -> list[str]:
        return chunks

    assert pipeline.config.steps[0].adapters == [
        AdapterRef(name=ref_name(strip)),
        AdapterRef(name="html_to_markdown"),
        AdapterRef(name="segment_markdown", params={"max_tokens": 200}),
        AdapterRef(name=ref_name(segment), params={"limit": 3}),
        AdapterRef(name="unit_test_sdk_upper"),
        AdapterRef(name="pkg.mod:fn", params={"a": 1}),
        AdapterRef(name=ref_name(finish)),
    ]


def test_callables_are_kept_as_handlers() -> None:
    pipeline = Pipeline("p")
    pipeline.step(output="x", adapters=[strip, upper, "html_to_markdown"])(to_markdown)
    assert pipeline.handlers == {
        ref_name(strip): strip,
        "unit_test_sdk_upper": upper,
        ref_name(to_markdown): to_markdown,
    }


def test_callable_reference_is_module_and_qualname() -> None:
    pipeline = Pipeline("p")
    pipeline.add_step("fetch", output="x", adapters=[fetch])
    assert pipeline.config.steps[0].adapters[0].name == f"{__name__}:fetch"


def test_functions_made_in_a_factory_get_distinct_names() -> None:
    def build(name: str, broken: bool) -> Pipeline:
        p = Pipeline(name)

        @p.step(output="x")
        def work(text: str) -> str:
            return text if not broken else ""

        return p

    first, second = build("a", True), build("b", False)
    names = [p.config.steps[0].adapters[0].name for p in (first, second)]
    assert names == [f"{__name__}:a.work.work", f"{__name__}:b.work.work"]
    assert first.handlers[names[0]] is not second.handlers[names[1]]


def test_add_step_of_adapters_only() -> None:
    pipeline = Pipeline("p")
    pipeline.add_step("convert", output="markdown", adapters=["html_to_markdown"])
    step = pipeline.add_step("segment", output="chunks",
                             adapters=[("segment_markdown", {"max_tokens": 50})], fan_out=True)
    assert step.input == "markdown"
    assert pipeline.config.steps[1] == step
    assert pipeline.handlers == {}


# --- invalid graphs at decoration time ------------------------------------------------------


def test_duplicate_step_name() -> None:
    pipeline = Pipeline("p")
    pipeline.step(output="x")(fetch)
    with pytest.raises(GraphError) as err:
        pipeline.step(output="y")(fetch)
    assert graph_error_codes(err) == ["duplicate_step_name"]
    assert "'fetch'" in str(err.value)


def test_fan_out_and_collect() -> None:
    pipeline = Pipeline("p")
    with pytest.raises(GraphError) as err:
        pipeline.step(output="x", fan_out=True, collect=True)(segment)
    assert graph_error_codes(err) == ["fan_out_and_collect"]
    assert "'segment'" in str(err.value)


def test_two_steps_writing_one_stage() -> None:
    pipeline = Pipeline("p")
    pipeline.step(output="x")(fetch)
    with pytest.raises(GraphError) as err:
        pipeline.step(output="x", input="input")(to_markdown)
    assert graph_error_codes(err) == ["stage_written_twice"]
    assert "'to_markdown'" in str(err.value)


def test_unknown_input_stage() -> None:
    pipeline = Pipeline("p")
    pipeline.step(output="x")(fetch)
    with pytest.raises(GraphError) as err:
        pipeline.step(output="y", input="nowhere")(to_markdown)
    assert graph_error_codes(err) == ["unknown_input_stage"]
    assert "'to_markdown'" in str(err.value)
    assert "'nowhere'" in str(err.value)


def test_output_named_input() -> None:
    pipeline = Pipeline("p")
    pipeline.step(output="x")(fetch)
    with pytest.raises(GraphError) as err:
        pipeline.step(output="input")(to_markdown)
    assert graph_error_codes(err) == ["output_is_entry_stage"]
    assert "'to_markdown'" in str(err.value)


def test_rejected_step_is_not_added() -> None:
    pipeline = Pipeline("p")
    pipeline.step(output="x")(fetch)
    with pytest.raises(GraphError):
        pipeline.step(output="x", input="input", adapters=[strip])(to_markdown)
    assert [s.name for s in pipeline.config.steps] == ["fetch"]
    # the next step still defaults to the last accepted output
    pipeline.step(output="y")(to_markdown)
    assert pipeline.config.steps[1].input == "x"


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"timeout": 0},
        {"priority": 5000},
        {"concurrency_limit": 0},
        {"queue": "no spaces"},
        {"colour": "red"},
    ],
)
def test_bad_options_raise_invalid_step_options(options: dict[str, Any]) -> None:
    pipeline = Pipeline("p")
    with pytest.raises(GraphError) as err:
        pipeline.step(output="x", **options)(fetch)
    assert graph_error_codes(err) == ["invalid_step_options"]
    finding = err.value.findings[0]
    assert finding.path == "steps.fetch"
    assert "step 'fetch' has invalid options" in finding.message
    assert err.value.pipeline == "p"
    with pytest.raises(ValidationError):
        _ = pipeline.config  # nothing was added: still no steps at all


def test_bad_step_name_raises_invalid_step_options() -> None:
    pipeline = Pipeline("p")
    with pytest.raises(GraphError) as err:
        pipeline.step(output="x", name="has space")(fetch)
    assert graph_error_codes(err) == ["invalid_step_options"]
    assert "'has space'" in str(err.value)


def test_bad_backoff_dict_raises_invalid_step_options() -> None:
    pipeline = Pipeline("p")
    with pytest.raises(GraphError) as err:
        pipeline.step(output="x", backoff={"jitter": 2})(fetch)
    assert graph_error_codes(err) == ["invalid_step_options"]


# --- config round trips ----------------------------------------------------------------------


def test_config_round_trips_through_snapshot() -> None:
    cfg = docs_ingest().config
    assert PipelineConfig.model_validate(cfg.snapshot()) == cfg


def test_config_round_trips_through_yaml_text() -> None:
    cfg = docs_ingest().config
    text = yaml.safe_dump(cfg.snapshot(), sort_keys=True)
    again = PipelineConfig.model_validate(yaml.safe_load(text))
    assert again == cfg
    assert again.config_hash() == cfg.config_hash()


def test_sdk_and_yaml_define_the_same_pipeline() -> None:
    written = yaml.safe_load(
        """
        name: p
        steps:
          - name: convert
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
                params: {max_tokens: 200}
        """
    )
    pipeline = Pipeline("p")
    pipeline.add_step("convert", output="markdown", adapters=["html_to_markdown"])
    pipeline.add_step("segment", output="chunks", fan_out=True,
                      adapters=[("segment_markdown", {"max_tokens": 200})])
    assert pipeline.config == PipelineConfig.model_validate(written)
    assert pipeline.config.config_hash() == PipelineConfig.model_validate(written).config_hash()


def test_from_config() -> None:
    cfg = docs_ingest().config
    pipeline = Pipeline.from_config(cfg)
    assert pipeline.name == "docs-ingest"
    assert pipeline.description == cfg.description
    assert pipeline.config == cfg
    assert pipeline.handlers == {}


def test_from_config_then_extend() -> None:
    pipeline = Pipeline.from_config(docs_ingest().config)
    pipeline.step(output="summary")(strip)
    assert pipeline.config.steps[-1].input == "document"
    with pytest.raises(GraphError):
        pipeline.step(output="other", name="join")(strip)


def test_empty_pipeline_has_no_valid_config() -> None:
    with pytest.raises(ValidationError):
        _ = Pipeline("empty").config


def test_repr() -> None:
    expected = "Pipeline('docs-ingest', steps=['fetch', 'clean', 'segment', 'join'])"
    assert repr(docs_ingest()) == expected
