"""The shipped adapters for document pipelines.

list_documents → load_document → html_to_markdown → segment_markdown (fan out)
→ embed → vector_index (collect); `search` reads the index back.

Items are plain JSON values. A *document* is
`{"id", "source", "format", "content"}` with format html, markdown or text; a
*chunk* is `{"doc_id", "source", "chunk_index", "heading", "text"}`, plus
`"vector"` and `"embedding_model"` once embedded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import itertools
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import fsspec
import orjson
from fsspec.implementations.local import LocalFileSystem
from markdownify import MarkdownConverter

from stageline.adapters.registry import adapter

__all__ = [
    "embed",
    "embed_text",
    "html_to_markdown",
    "list_documents",
    "load_document",
    "search",
    "segment_markdown",
    "vector_index",
]

Document = dict[str, Any]
Chunk = dict[str, Any]

FORMATS = ("html", "markdown", "text")
EXTENSIONS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown",
              ".txt": "text"}
HASHING_MODEL = "hashing"
INDEX_FORMAT = "stageline.vector_index"
INDEX_VERSION = 1


# --- documents ------------------------------------------------------------


@adapter("list_documents")
def list_documents(item: Any, *, recursive: bool = True,
                   include_content: bool = True) -> list[Document]:
    """List the documents of `{"folder": ...}` (a path or fsspec URL), one item each.

    Hidden files and unknown extensions are skipped; order is by path. Content
    is read here by default so that the stage holds what was ingested: a replay
    or a cached step then sees the same bytes even if the folder changed.
    """
    folder = _require_str(_require_dict(item, "list_documents").get("folder"),
                          "list_documents", "folder")
    fs, root = fsspec.core.url_to_fs(folder)
    if not fs.isdir(root):
        raise FileNotFoundError(f"list_documents: folder {folder!r} does not exist")
    docs = []
    for rel in _relative_files(fs, root, recursive):
        doc: Document = {"id": rel, "path": f"{folder.rstrip('/')}/{rel}",
                         "format": EXTENSIONS[_extension(rel)]}
        docs.append(load_document(doc) if include_content else doc)
    return docs


@adapter("load_document")
def load_document(item: Any, *, encoding: str = "utf-8") -> Document:
    """Normalise `{"path"?, "content"?, "format"?, "id"?}` into a document.

    Content given inline wins; otherwise `path` is read with fsspec. The
    format comes from the item, else the path's extension, else a sniff.
    """
    fields = _require_dict(item, "load_document")
    path = fields.get("path")
    content = _content_of(fields, encoding)
    return {
        "id": str(fields.get("id") or path or _short_hash(content)),
        "source": fields.get("source") or path,
        "format": _format_of(fields.get("format"), path, content),
        "content": content,
    }


def _content_of(item: dict[str, Any], encoding: str) -> str:
    content = item.get("content")
    if content is None and isinstance(item.get("path"), str):
        content = _read_text(item["path"], encoding)
    if isinstance(content, bytes):
        content = content.decode(encoding)
    if not isinstance(content, str):
        raise TypeError("load_document: the item needs a string 'content' or a 'path' to read, "
                        f"got content of type {type(content).__name__}")
    return content


@adapter("html_to_markdown")
def html_to_markdown(item: Any) -> Document:
    """Convert an HTML string or document to markdown; markdown and text pass through.

    Headings become ATX (`#`), links are kept; head, script and style are dropped.
    """
    doc = _as_document(item, "html", "html_to_markdown")
    if doc["format"] != "html":
        return {**doc, "format": "markdown"}
    return {**doc, "format": "markdown", "content": _HtmlConverter().render(doc["content"])}


# Older markdownify releases ship no type hints: the ignore covers those.
class _HtmlConverter(MarkdownConverter):  # type: ignore[misc, unused-ignore]
    def __init__(self) -> None:
        super().__init__(heading_style="atx", bullets="-")

    def render(self, html: str) -> str:
        # A trailing newline stops BeautifulSoup from warning that short
        # markup "looks like a filename"; pytest turns warnings into errors.
        markdown: str = self.convert(html + "\n")
        return re.sub(r"\n{3,}", "\n\n", markdown).strip() + "\n"

    def _drop(self, el: Any, text: str, *args: Any, **kwargs: Any) -> str:
        return ""

    # Explicit, rather than relying on the installed markdownify's defaults.
    convert_head = convert_script = convert_style = convert_template = _drop


# --- segmentation -----------------------------------------------------------

_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


@adapter("segment_markdown")
def segment_markdown(item: Any, *, max_tokens: int = 200, overlap: int = 0) -> list[Chunk]:
    """Split a markdown document (or string) into chunks of at most `max_tokens` tokens.

    A token is a whitespace-separated word. Chunks never span an ATX heading;
    within a section, paragraphs are packed greedily, and a paragraph that is
    too long is split by lines, then by words. With `overlap`, each chunk after
    the first of its section starts with the last `overlap` words of the
    previous one (still within `max_tokens`). Code fences are never split on
    their blank lines. An empty document gives no chunks.
    """
    _check_window(max_tokens, overlap)
    doc = _as_document(item, "markdown", "segment_markdown")
    chunks: list[Chunk] = []
    for heading, paragraphs in _sections(doc["content"]):
        for text in _with_overlap(_pack(paragraphs, max_tokens - overlap), overlap):
            chunks.append({"doc_id": doc["id"], "source": doc["source"],
                           "chunk_index": len(chunks), "heading": heading, "text": text})
    return chunks


def _check_window(max_tokens: int, overlap: int) -> None:
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"segment_markdown: max_tokens must be a positive integer, "
                         f"not {max_tokens!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < max_tokens:
        raise ValueError(f"segment_markdown: overlap must be an integer in [0, max_tokens), "
                         f"not {overlap!r}")


def _sections(markdown: str) -> Iterator[tuple[str | None, list[str]]]:
    """(nearest heading, paragraphs) per section; the heading line opens its section."""
    heading: str | None = None
    blocks: list[str] = []
    for block in _blocks(markdown):
        match = _HEADING.match(block)
        if match:
            if blocks:
                yield heading, blocks
            heading, blocks = match.group(2), []
        blocks.append(block)
    if blocks:
        yield heading, blocks


def _blocks(markdown: str) -> Iterator[str]:
    """Paragraphs split on blank lines (not inside code fences); a heading is its own block."""
    current: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (not line.strip() or _HEADING.match(line)):
            if current:
                yield "\n".join(current)
                current = []
            if line.strip():
                yield line
            continue
        current.append(line)
    if current:
        yield "\n".join(current)


def _pack(paragraphs: Sequence[str], budget: int) -> list[str]:
    """Greedily join paragraphs into pieces of at most `budget` words."""
    pieces: list[str] = []
    parts: list[str] = []
    size = 0
    for text, sep in (unit for p in paragraphs for unit in _units(p, budget)):
        words = _count(text)
        if parts and size + words > budget:
            pieces.append("".join(parts))
            parts, size = [], 0
        parts.append(f"{sep}{text}" if parts else text)
        size += words
    pieces.append("".join(parts))
    return [p.strip("\n") for p in pieces if p.strip()]


def _units(text: str, budget: int, sep: str = "\n\n") -> Iterator[tuple[str, str]]:
    """(text, separator before it) units of at most `budget` words.

    A paragraph that fits stays whole; a bigger one is cut into lines, then
    words, which then fill the current piece instead of leaving it short.
    """
    if _count(text) <= budget:
        yield text, sep
        return
    lines = text.splitlines()
    if len(lines) > 1:
        for i, line in enumerate(lines):
            yield from _units(line, budget, sep if i == 0 else "\n")
        return
    for i, word in enumerate(text.split()):
        yield word, sep if i == 0 else " "


def _with_overlap(pieces: list[str], overlap: int) -> list[str]:
    if overlap == 0:
        return pieces
    out = pieces[:1]
    for previous, piece in itertools.pairwise(pieces):
        out.append(" ".join(previous.split()[-overlap:]) + "\n\n" + piece)
    return out


def _count(text: str) -> int:
    return len(text.split())


# --- embeddings -------------------------------------------------------------

# Function words dominate hashed counts and make every text look alike.
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have",
    "how", "in", "is", "it", "its", "of", "on", "or", "so", "that", "the", "their", "then",
    "there", "these", "this", "to", "was", "were", "what", "when", "which", "while", "who",
    "will", "with",
})


@adapter("embed")
def embed(item: Any, *, model: str = HASHING_MODEL, dim: int = 256) -> Chunk:
    """Add an L2-normalised `vector` (and `embedding_model`) to a chunk or string.

    `model="hashing"` is a dependency-free feature-hashing embedder, the same
    in every process. Any other name is a sentence-transformers model (extra
    `stageline[embeddings]`), whose own dimension replaces `dim`.
    """
    chunk: Chunk = {"text": item} if isinstance(item, str) else _require_dict(item, "embed")
    text = _require_str(chunk.get("text"), "embed", "text")
    return {**chunk, "vector": embed_text(text, model=model, dim=dim), "embedding_model": model}


def embed_text(text: str, *, model: str = HASHING_MODEL, dim: int = 256) -> list[float]:
    """The vector of one text; a text without words gives a zero vector."""
    if model == HASHING_MODEL:
        return _hashing_vector(text, dim)
    vector = _sentence_transformer(model).encode(text, normalize_embeddings=True)
    return [float(x) for x in vector]


def _hashing_vector(text: str, dim: int) -> list[float]:
    if not isinstance(dim, int) or not 1 <= dim <= 65536:
        raise ValueError(f"embed: dim must be an integer in [1, 65536], not {dim!r}")
    vector = [0.0] * dim
    for feature, count in Counter(_features(text)).items():
        # blake2b, not hash(): Python salts str hashes per process.
        value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
        sign = 1.0 if value >> 63 else -1.0
        vector[value % dim] += sign * (1.0 + math.log(count))
    return _normalised(vector)


def _features(text: str) -> Iterator[str]:
    tokens = [t for t in re.findall(r"\w+", text.lower()) if t not in _STOPWORDS]
    yield from tokens
    yield from (f"{a} {b}" for a, b in itertools.pairwise(tokens))


def _normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


@functools.lru_cache(maxsize=4)
def _sentence_transformer(model: str) -> Any:
    try:
        module = importlib.import_module("sentence_transformers")
    except ImportError as exc:
        raise ImportError(
            f"embed: model {model!r} needs sentence-transformers; install it with "
            f"`pip install 'stageline[embeddings]'`, or use model={HASHING_MODEL!r}"
        ) from exc
    return module.SentenceTransformer(model)


# --- index and search -------------------------------------------------------


@adapter("vector_index")
def vector_index(items: Any, *, path: str = "stageline-data/vector-index.jsonl") -> dict[str, Any]:
    """Collect embedded chunks into a JSON Lines index at `path` (local or fsspec URL).

    Line one is a header (format, model, dim, count); then one record per chunk:
    `{"id", "vector", "metadata"}`, ordered by document and chunk index so the
    same chunks always give the same file. Local files are replaced atomically.
    """
    if not isinstance(items, list):
        raise TypeError(f"vector_index: expected the list of a collect step, "
                        f"got {type(items).__name__}")
    chunks = sorted((_require_vector(c) for c in items), key=_chunk_order)
    dim, model = _common_shape(chunks)
    header = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "model": model, "dim": dim,
              "count": len(chunks)}
    _write_atomic(path, _jsonl([header, *(_record(c) for c in chunks)]))
    return {"path": path, "count": len(chunks), "dim": dim}


def search(index_path: str, query: str, k: int = 5, model: str = HASHING_MODEL,
           dim: int = 256) -> list[dict[str, Any]]:
    """The `k` chunks of an index closest to `query` by cosine similarity, best first.

    Each result is the chunk's metadata plus `id` and `score`. The query is
    embedded with `model` and `dim`, which must match the index's.
    """
    if k < 0:
        raise ValueError(f"search: k must be >= 0, not {k}")
    header, records = _read_index(index_path)
    _check_compatible(header, model, dim, index_path)
    query_vector = embed_text(query, model=model, dim=dim)
    scored = [(_cosine(query_vector, r["vector"]), i) for i, r in enumerate(records)]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [{**records[i]["metadata"], "id": records[i]["id"], "score": score}
            for score, i in scored[:k]]


def _require_vector(item: Any) -> Chunk:
    chunk = _require_dict(item, "vector_index")
    vector = chunk.get("vector")
    if not isinstance(vector, list) or not vector:
        raise TypeError(f"vector_index: chunk {_chunk_id(chunk)!r} has no vector; "
                        "run embed before vector_index")
    return chunk


def _common_shape(chunks: list[Chunk]) -> tuple[int, str | None]:
    dims = {len(c["vector"]) for c in chunks}
    models = {c.get("embedding_model") for c in chunks}
    if len(dims) > 1 or len(models) > 1:
        raise ValueError(f"vector_index: chunks mix vector sizes {sorted(dims)} or models "
                         f"{sorted(map(str, models))}; embed them all the same way")
    return (dims.pop() if dims else 0), (models.pop() if models else None)


def _record(chunk: Chunk) -> dict[str, Any]:
    metadata = {k: v for k, v in chunk.items() if k not in ("vector", "embedding_model")}
    return {"id": _chunk_id(chunk), "vector": chunk["vector"], "metadata": metadata}


def _chunk_id(chunk: Chunk) -> str:
    return f"{chunk.get('doc_id')}#{chunk.get('chunk_index')}"


def _chunk_order(chunk: Chunk) -> tuple[str, int]:
    index = chunk.get("chunk_index")
    return str(chunk.get("doc_id")), index if isinstance(index, int) else 0


def _read_index(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with fsspec.open(path, "rb") as fh:
        lines = [orjson.loads(line) for line in fh.read().splitlines() if line.strip()]
    if not lines or not isinstance(lines[0], dict) or lines[0].get("format") != INDEX_FORMAT:
        raise ValueError(f"search: {path!r} is not a stageline vector index")
    return lines[0], lines[1:]


def _check_compatible(header: dict[str, Any], model: str, dim: int, path: str) -> None:
    if header["count"] == 0:
        return
    other_model = header["model"] not in (None, model)
    # Other models fix their own dimension; only the hashing one takes `dim`.
    other_dim = model == HASHING_MODEL and header["dim"] != dim
    if other_model or other_dim:
        raise ValueError(f"search: index {path!r} was built with model={header['model']!r} "
                         f"dim={header['dim']}, not model={model!r} dim={dim}")


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


# --- files ------------------------------------------------------------------


def _relative_files(fs: Any, root: str, recursive: bool) -> list[str]:
    paths: Iterable[str] = fs.find(root) if recursive else fs.ls(root, detail=False)
    prefix = root.rstrip("/") + "/"
    rels = (p[len(prefix):] for p in paths if p.startswith(prefix))
    return sorted(r for r in rels if _extension(r) in EXTENSIONS and not _hidden(r))


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _read_text(path: str, encoding: str) -> str:
    with fsspec.open(path, "r", encoding=encoding) as fh:
        text: str = fh.read()
    return text


def _jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def _write_atomic(path: str, data: bytes) -> None:
    """Local files: temp file + rename, so readers never see half an index.

    Object stores publish an object only when its upload completes, so a plain
    write is already all-or-nothing there.
    """
    fs, fs_path = fsspec.core.url_to_fs(path)
    if not isinstance(fs, LocalFileSystem):
        with fs.open(fs_path, "wb") as fh:
            fh.write(data)
        return
    folder = os.path.dirname(fs_path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, fs_path)
    except BaseException:
        os.unlink(tmp)
        raise


# --- item checks ------------------------------------------------------------


def _as_document(item: Any, default_format: str, adapter_name: str) -> Document:
    """A document from a document dict, or from a bare string of `default_format`."""
    if isinstance(item, str):
        return {"id": _short_hash(item), "source": None, "format": default_format,
                "content": item}
    return load_document(_require_dict(item, adapter_name))


def _format_of(declared: Any, path: Any, content: str) -> str:
    if declared is not None:
        if declared not in FORMATS:
            raise ValueError(f"unknown document format {declared!r}; use one of {FORMATS}")
        return str(declared)
    if isinstance(path, str) and _extension(path) in EXTENSIONS:
        return EXTENSIONS[_extension(path)]
    looks_html = content.lstrip().startswith("<") and "</" in content
    return "html" if looks_html else "text"


def _require_dict(item: Any, adapter_name: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise TypeError(f"{adapter_name}: expected a dict item, got {type(item).__name__}")
    return item


def _require_str(value: Any, adapter_name: str, field: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{adapter_name}: expected {field!r} to be a string, "
                        f"got {type(value).__name__}")
    return value


def _short_hash(text: str) -> str:
    return "doc-" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
