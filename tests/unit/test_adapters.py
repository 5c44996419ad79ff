"""The shipped adapter library, on real files: documents → chunks → vectors → index."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import fsspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stageline.adapters import library
from stageline.adapters.library import (
    embed,
    html_to_markdown,
    list_documents,
    load_document,
    search,
    segment_markdown,
    vector_index,
)
from stageline.adapters.registry import resolve
from stageline.domain.config import PipelineConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLE_DOCS = EXAMPLES / "docs"

PAGE = """<!doctype html>
<html><head><title>Page title</title><style>p { color: red }</style></head>
<body>
  <h1>Replay</h1>
  <p>Read the <a href="https://example.org/guide">replay guide</a> first.</p>
  <script>alert("never in markdown")</script>
  <h2>Modes</h2>
  <ul><li>storage</li><li>lineage</li></ul>
</body></html>
"""


def words(text: str) -> list[str]:
    return text.split()


def chunk(doc_id: str, index: int, text: str) -> dict[str, Any]:
    return {"doc_id": doc_id, "source": f"{doc_id}.md", "chunk_index": index,
            "heading": None, "text": text}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "a.md").write_text("# Alpha\n\nFirst document.\n")
    (tmp_path / "b.html").write_text("<h1>Beta</h1><p>Second.</p>")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "c.txt").write_text("plain text")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.md").write_text("# secret")
    return tmp_path


@pytest.fixture
def memory_url() -> Iterator[str]:
    root = f"memory://stageline-tests/{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


# --- list_documents and load_document ----------------------------------------


def test_list_documents_reads_known_files_in_path_order(folder: Path) -> None:
    docs = list_documents({"folder": str(folder)})
    assert [d["id"] for d in docs] == ["a.md", "b.html", "nested/c.txt"]
    assert [d["format"] for d in docs] == ["markdown", "html", "text"]
    assert docs[0] == {"id": "a.md", "source": f"{folder}/a.md", "format": "markdown",
                       "content": "# Alpha\n\nFirst document.\n"}


def test_list_documents_without_content_or_recursion(folder: Path) -> None:
    docs = list_documents({"folder": str(folder)}, recursive=False, include_content=False)
    assert docs == [
        {"id": "a.md", "path": f"{folder}/a.md", "format": "markdown"},
        {"id": "b.html", "path": f"{folder}/b.html", "format": "html"},
    ]


def test_list_documents_on_an_fsspec_url(memory_url: str) -> None:
    with fsspec.open(f"{memory_url}/docs/x.md", "w") as fh:
        fh.write("# X")
    docs = list_documents({"folder": f"{memory_url}/docs"})
    assert [(d["id"], d["source"], d["content"]) for d in docs] == [
        ("x.md", f"{memory_url}/docs/x.md", "# X")]


def test_list_documents_rejects_missing_folder_and_bad_items(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_documents({"folder": str(tmp_path / "nope")})
    with pytest.raises(TypeError, match="'folder'"):
        list_documents({"path": str(tmp_path)})
    with pytest.raises(TypeError, match="expected a dict"):
        list_documents([str(tmp_path)])


def test_load_document_reads_a_path_and_infers_the_format(folder: Path) -> None:
    doc = load_document({"path": str(folder / "b.html")})
    assert doc == {"id": str(folder / "b.html"), "source": str(folder / "b.html"),
                   "format": "html", "content": "<h1>Beta</h1><p>Second.</p>"}


def test_load_document_prefers_inline_content() -> None:
    doc = load_document({"id": "n1", "path": "/does/not/exist.md", "content": "inline"})
    assert doc == {"id": "n1", "source": "/does/not/exist.md", "format": "markdown",
                   "content": "inline"}


def test_load_document_sniffs_and_decodes_inline_content() -> None:
    assert load_document({"content": "<p>hi</p>"})["format"] == "html"
    text = load_document({"content": "caf\u00e9".encode()})
    assert (text["format"], text["content"]) == ("text", "caf\u00e9")
    assert text["id"].startswith("doc-") and text["source"] is None
    assert load_document({"content": "x"})["id"] == load_document({"content": "x"})["id"]


@pytest.mark.parametrize(("item", "error", "match"), [
    ("just a string", TypeError, "expected a dict"),
    ({}, TypeError, "'content' or a 'path'"),
    ({"content": 42}, TypeError, "'content' or a 'path'"),
    ({"content": "x", "format": "pdf"}, ValueError, "unknown document format"),
])
def test_load_document_rejects_bad_items(item: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        load_document(item)


def test_load_document_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_document({"path": str(tmp_path / "missing.md")})


# --- html_to_markdown -------------------------------------------------------


def test_html_to_markdown_keeps_headings_and_links_and_drops_code() -> None:
    doc = html_to_markdown({"id": "p1", "source": "page.html", "format": "html",
                            "content": PAGE})
    assert (doc["id"], doc["source"], doc["format"]) == ("p1", "page.html", "markdown")
    md = doc["content"]
    assert md.startswith("# Replay\n")
    assert "## Modes" in md
    assert "[replay guide](https://example.org/guide)" in md
    assert "- storage\n- lineage" in md
    for dropped in ("alert", "color", "Page title"):
        assert dropped not in md


def test_html_to_markdown_accepts_a_string() -> None:
    doc = html_to_markdown("<h2>Title</h2><p>Body</p>")
    assert doc["content"] == "## Title\n\nBody\n"
    assert doc["format"] == "markdown" and doc["source"] is None


def test_html_to_markdown_on_short_filename_like_markup_does_not_warn() -> None:
    # BeautifulSoup warns on markup like this; warnings are errors in this suite.
    assert html_to_markdown("notes.html")["content"] == "notes.html\n"


def test_html_to_markdown_passes_markdown_and_text_through() -> None:
    md = {"id": "m", "source": None, "format": "markdown", "content": "# Keep <b>me</b>"}
    assert html_to_markdown(md) == md
    text = html_to_markdown({"id": "t", "format": "text", "content": "plain"})
    assert (text["format"], text["content"]) == ("markdown", "plain")


def test_html_to_markdown_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="html_to_markdown: expected a dict"):
        html_to_markdown(["<p>x</p>"])


# --- segment_markdown -------------------------------------------------------

LONG_DOC = "\n\n".join([
    "Preamble before any heading.",
    "# One",
    " ".join(f"w{i}" for i in range(45)),
    "short paragraph",
    "## Two",
    "\n".join(" ".join(f"l{j}x{i}" for i in range(7)) for j in range(6)),
    "```python\n# a comment, not a heading\n\nprint('blank line above stays')\n```",
])


@pytest.mark.parametrize(("max_tokens", "overlap"), [(5, 0), (10, 0), (12, 4), (200, 0)])
def test_segment_markdown_respects_max_tokens(max_tokens: int, overlap: int) -> None:
    chunks = segment_markdown(LONG_DOC, max_tokens=max_tokens, overlap=overlap)
    assert all(0 < len(words(c["text"])) <= max_tokens for c in chunks)
    assert [c["chunk_index"] for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize("max_tokens", [3, 10, 50, 200])
def test_segment_markdown_keeps_every_word_in_order(max_tokens: int) -> None:
    chunks = segment_markdown(LONG_DOC, max_tokens=max_tokens)
    assert [w for c in chunks for w in words(c["text"])] == words(LONG_DOC)


def test_segment_markdown_splits_at_headings_and_labels_chunks() -> None:
    chunks = segment_markdown({"id": "d1", "source": "d1.md", "format": "markdown",
                               "content": LONG_DOC}, max_tokens=200)
    assert [(c["heading"], c["text"].splitlines()[0]) for c in chunks] == [
        (None, "Preamble before any heading."), ("One", "# One"), ("Two", "## Two")]
    assert {(c["doc_id"], c["source"]) for c in chunks} == {("d1", "d1.md")}
    assert "# a comment, not a heading\n\nprint(" in chunks[-1]["text"]


def test_segment_markdown_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    text = "# H\n\n" + " ".join(f"w{i}" for i in range(30))
    chunks = segment_markdown(text, max_tokens=10, overlap=3)
    for previous, current in itertools.pairwise(chunks):
        assert words(current["text"])[:3] == words(previous["text"])[-3:]
    assert words(chunks[-1]["text"])[-1] == "w29"


def test_segment_markdown_on_empty_documents() -> None:
    assert segment_markdown("") == []
    assert segment_markdown({"id": "e", "format": "markdown", "content": " \n\n \n"}) == []


@pytest.mark.parametrize(("params", "match"), [
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 2.5}, "max_tokens"),
    ({"max_tokens": 10, "overlap": 10}, "overlap"),
    ({"overlap": -1}, "overlap"),
])
def test_segment_markdown_rejects_bad_windows(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        segment_markdown("# x", **params)


def test_segment_markdown_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="segment_markdown"):
        segment_markdown(b"# bytes")


paragraph = st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta"]), min_size=1,
                     max_size=60).map(" ".join)
block = st.one_of(paragraph, paragraph.map(lambda p: "## " + p[:20]))


@settings(max_examples=60, deadline=None)
@given(blocks=st.lists(block, max_size=12), max_tokens=st.integers(2, 40),
       overlap=st.integers(0, 5))
def test_segment_markdown_properties(blocks: list[str], max_tokens: int, overlap: int) -> None:
    overlap = min(overlap, max_tokens - 1)
    text = "\n\n".join(blocks)
    chunks = segment_markdown(text, max_tokens=max_tokens, overlap=overlap)
    assert all(len(words(c["text"])) <= max_tokens for c in chunks)
    if overlap == 0:
        assert [w for c in chunks for w in words(c["text"])] == words(text)


# --- embed ------------------------------------------------------------------


def test_embed_adds_a_normalised_vector_and_keeps_the_chunk() -> None:
    original = chunk("d", 0, "Replay an execution from any stage")
    out = embed(original, dim=64)
    assert {k: v for k, v in out.items() if k not in ("vector", "embedding_model")} == original
    assert out["embedding_model"] == "hashing" and len(out["vector"]) == 64
    assert math.isclose(math.fsum(x * x for x in out["vector"]), 1.0)


def test_embed_is_deterministic_across_processes() -> None:
    text = "Lineage records every attempt of every message"
    code = ("import json; from stageline.adapters.library import embed_text; "
            f"print(json.dumps(embed_text({text!r})))")
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    ]
    assert json.loads(runs[0]) == json.loads(runs[1]) == embed(text)["vector"]


def test_embed_separates_topics() -> None:
    def similarity(a: str, b: str) -> float:
        return math.fsum(x * y for x, y in zip(embed(a)["vector"], embed(b)["vector"],
                                               strict=True))

    near = similarity("bake sourdough bread with flour", "sourdough bread needs flour")
    far = similarity("bake sourdough bread with flour", "replay a pipeline execution")
    assert near > far


def test_embed_without_words_gives_a_zero_vector() -> None:
    assert embed(" ... ", dim=8)["vector"] == [0.0] * 8


def test_embed_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="embed: expected a dict"):
        embed(3)
    with pytest.raises(TypeError, match="'text'"):
        embed({"doc_id": "x"})
    with pytest.raises(ValueError, match="dim"):
        embed("x", dim=0)


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is not None,
                    reason="sentence-transformers is installed")
def test_embed_names_the_missing_extra_for_neural_models() -> None:
    with pytest.raises(ImportError, match=r"stageline\[embeddings\]"):
        embed("x", model="all-MiniLM-L6-v2")


# --- vector_index and search --------------------------------------------------


def embedded(*texts: str) -> list[dict[str, Any]]:
    return [embed(chunk(f"doc{i}", 0, text)) for i, text in enumerate(texts)]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_vector_index_writes_header_and_sorted_records(tmp_path: Path) -> None:
    items = [embed(chunk("b", 1, "second")), embed(chunk("a", 0, "first")),
             embed(chunk("b", 0, "zeroth"))]
    path = tmp_path / "out" / "index.jsonl"
    assert vector_index(items, path=str(path)) == {"path": str(path), "count": 3, "dim": 256}
    header, *records = read_jsonl(path)
    assert header == {"format": "stageline.vector_index", "version": 1, "model": "hashing",
                      "dim": 256, "count": 3}
    assert [r["id"] for r in records] == ["a#0", "b#0", "b#1"]
    assert records[0]["metadata"] == chunk("a", 0, "first")
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_vector_index_replaces_an_existing_index(tmp_path: Path) -> None:
    path = tmp_path / "index.jsonl"
    vector_index(embedded("one", "two"), path=str(path))
    vector_index(embedded("three"), path=str(path))
    assert [r["metadata"]["text"] for r in read_jsonl(path)[1:]] == ["three"]


def test_vector_index_of_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    assert vector_index([], path=str(path)) == {"path": str(path), "count": 0, "dim": 0}
    assert search(str(path), "anything") == []


def test_vector_index_and_search_on_an_fsspec_url(memory_url: str) -> None:
    url = f"{memory_url}/index.jsonl"
    vector_index(embedded("tram rides in Lisbon", "chain lubricant for bicycles"), path=url)
    assert search(url, "bicycle chain", k=1)[0]["doc_id"] == "doc1"


@pytest.mark.parametrize(("items", "error", "match"), [
    ({"not": "a list"}, TypeError, "expected the list"),
    (["text"], TypeError, "expected a dict"),
    ([chunk("a", 0, "no vector")], TypeError, "run embed before"),
    ([embed("a", dim=8), embed("b", dim=16)], ValueError, "mix vector sizes"),
])
def test_vector_index_rejects_bad_items(tmp_path: Path, items: Any, error: type[Exception],
                                        match: str) -> None:
    with pytest.raises(error, match=match):
        vector_index(items, path=str(tmp_path / "i.jsonl"))
    assert not (tmp_path / "i.jsonl").exists()


@pytest.fixture
def sample_index(tmp_path: Path) -> str:
    """The sample documents through every adapter, as the YAML pipeline runs them."""
    chunks = [
        embed(piece)
        for doc in list_documents({"folder": str(SAMPLE_DOCS)})
        for piece in segment_markdown(html_to_markdown(load_document(doc)), max_tokens=120)
    ]
    path = str(tmp_path / "docs-index.jsonl")
    vector_index(chunks, path=path)
    return path


@pytest.mark.parametrize(("query", "expected"), [
    ("how do I bake a sourdough loaf with starter and flour", "sourdough-recipe.html"),
    ("replay an execution from a stage into another version", "replay.html"),
    ("tram and custard tarts in Lisbon", "lisbon-travel-note.txt"),
    ("feature hashing embedder and cosine similarity", "embeddings.md"),
    ("lubricate the bicycle chain and check the brakes", "bicycle-maintenance.md"),
    ("correlation id of the parent message in a lineage entry", "lineage.md"),
])
def test_search_ranks_the_relevant_document_first(sample_index: str, query: str,
                                                  expected: str) -> None:
    hits = search(sample_index, query, k=3)
    assert len(hits) == 3
    assert Path(hits[0]["source"]).name == expected
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert {"id", "doc_id", "chunk_index", "heading", "text", "score"} <= hits[0].keys()
    assert "vector" not in hits[0]


def test_search_k(sample_index: str) -> None:
    assert search(sample_index, "bread", k=0) == []
    assert len(search(sample_index, "bread", k=10_000)) == len(read_jsonl(Path(sample_index))) - 1
    with pytest.raises(ValueError, match="k must be"):
        search(sample_index, "bread", k=-1)


def test_search_refuses_another_embedding(sample_index: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="built with model='hashing' dim=256"):
        search(sample_index, "bread", dim=128)
    not_an_index = tmp_path / "other.jsonl"
    for content in ('{"id": 1}\n', "[1, 2]\n", ""):
        not_an_index.write_text(content)
        with pytest.raises(ValueError, match="not a stageline vector index"):
            search(str(not_an_index), "bread")


# --- the example pipelines ------------------------------------------------------


def load_yaml_config() -> PipelineConfig:
    return PipelineConfig.model_validate(yaml.safe_load((EXAMPLES / "docs_ingest.yaml")
                                                        .read_text()))


def test_yaml_example_names_only_shipped_adapters() -> None:
    config = load_yaml_config()
    assert config.name == "docs-ingest-yaml"
    for step in config.steps:
        for ref in step.adapters:
            assert resolve(ref.name) is getattr(library, ref.name)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_ingest_example",
                                                  EXAMPLES / "docs_ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:  # `from stageline import Pipeline` lands with the public API
        pytest.skip(f"the example's imports are not available yet: {exc}")
    return module


def test_python_and_yaml_examples_define_the_same_graph() -> None:
    def shape(config: PipelineConfig) -> list[tuple[Any, ...]]:
        return [(s.name, s.input, s.output, s.fan_out, s.collect, s.retries)
                for s in config.steps]

    assert shape(load_example().pipeline.config) == shape(load_yaml_config())


def test_python_example_builds_a_searchable_index(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    index_path = str(tmp_path / "docs-index.jsonl")
    documents = example.list_documents({"folder": str(SAMPLE_DOCS), "index_path": index_path})
    chunks = [piece for doc in documents for piece in example.segment(example.to_markdown(doc))]
    summary = example.index([example.embedding_generator(c) for c in chunks])
    assert summary == {"path": index_path, "count": len(chunks), "dim": 256}
    example.main(["search", "sourdough starter", "--index", index_path, "-k", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "sourdough-recipe.html" in lines[0]
