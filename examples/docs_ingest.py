"""Ingest a folder of documents into a searchable vector index.

    documents ─fan out─▶ markdown ─fan out─▶ markdown_segmented ─▶ embeddings ─collect─▶ index

Execution input: `{"folder": "examples/docs", "index_path": "stageline-data/docs-index.jsonl"}`
(`index_path` is optional). Relative paths are resolved from the worker's
working directory; any fsspec URL (`s3://bucket/docs`) works too.

Once an execution has completed, query the index:

    python examples/docs_ingest.py search "how does replay work" [--index PATH] [-k 5]

`docs_ingest.yaml` defines the same graph with the shipped adapters only.
"""

from __future__ import annotations

import argparse
from typing import Any

from stageline import Pipeline
from stageline.adapters import library

DEFAULT_INDEX = "stageline-data/docs-index.jsonl"
MAX_TOKENS = 120
OVERLAP = 15

pipeline = Pipeline("docs-ingest", description="Folder of documents → chunk vectors → index")


@pipeline.step(output="documents", fan_out=True)
def list_documents(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One document per .html/.htm/.md/.markdown/.txt file in the input folder."""
    index_path = payload.get("index_path") or DEFAULT_INDEX
    return [{**doc, "index_path": index_path} for doc in library.list_documents(payload)]


@pipeline.step(input="documents", output="markdown")
def to_markdown(doc: dict[str, Any]) -> dict[str, Any]:
    return _carry(doc, library.html_to_markdown(library.load_document(doc)))


@pipeline.step(input="markdown", output="markdown_segmented", fan_out=True)
def segment(md: dict[str, Any]) -> list[dict[str, Any]]:
    chunks = library.segment_markdown(md, max_tokens=MAX_TOKENS, overlap=OVERLAP)
    return [_carry(md, chunk) for chunk in chunks]


@pipeline.step(input="markdown_segmented", output="embeddings", retries=3)
def embedding_generator(chunk: dict[str, Any]) -> dict[str, Any]:
    return library.embed(chunk)  # keeps every key of the chunk, index_path included


@pipeline.step(input="embeddings", output="index", collect=True)
def index(vectors: list[dict[str, Any]]) -> dict[str, Any]:
    """Write all vectors of the execution into one index file.

    With no documents there is no item to carry `index_path`: the default is used.
    """
    paths = {v.get("index_path") or DEFAULT_INDEX for v in vectors} or {DEFAULT_INDEX}
    if len(paths) > 1:
        raise ValueError(f"chunks of one execution name several index paths: {sorted(paths)}")
    chunks = [{k: v for k, v in vector.items() if k != "index_path"} for vector in vectors]
    return library.vector_index(chunks, path=paths.pop())


def _carry(source: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    # A collect step sees only its items, not the execution's input, so the
    # index path rides along on every item from the first step to the last.
    return {**item, "index_path": source.get("index_path") or DEFAULT_INDEX}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Query the index built by docs-ingest.")
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="print the chunks closest to a query")
    search.add_argument("query")
    search.add_argument("--index", default=DEFAULT_INDEX, help=f"default: {DEFAULT_INDEX}")
    search.add_argument("-k", type=int, default=5, help="number of results (default: 5)")
    args = parser.parse_args(argv)
    for rank, hit in enumerate(library.search(args.index, args.query, k=args.k), start=1):
        preview = " ".join(hit["text"].split())[:160]
        print(f"{rank}. {hit['score']:.3f}  {hit['source']}  [{hit['heading'] or '-'}]")
        print(f"   {preview}")


if __name__ == "__main__":
    main()
