"""Stage items: how values are encoded, hashed and keyed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

JSON_TYPE = "application/json"
BYTES_TYPE = "application/octet-stream"
ENTRY_KEY = "0"
COLLECT_KEY = "all"


@dataclass(frozen=True)
class Encoded:
    data: bytes
    content_type: str
    content_hash: str


def encode(value: Any) -> Encoded:
    """Bytes stay bytes; everything else is stored as JSON."""
    if isinstance(value, bytes | bytearray | memoryview):
        data, ctype = bytes(value), BYTES_TYPE
    else:
        # Sorted keys: equal values get equal bytes, so equal content hashes.
        opts = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS
        # A copy of exactly its size: orjson's bytes keep its whole working
        # buffer (4 KB for the smallest value), and a fan-out holds thousands.
        data, ctype = bytes(memoryview(orjson.dumps(value, option=opts))), JSON_TYPE
    return Encoded(data, ctype, content_hash(data))


def decode(data: bytes, content_type: str) -> Any:
    if content_type == JSON_TYPE:
        return orjson.loads(data)
    return data


def content_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def child_key(parent_key: str, index: int, fan_out: bool) -> str:
    """Keys follow lineage: a 1:1 step keeps its input's key, fan-out appends."""
    return f"{parent_key}/{index:05d}" if fan_out else parent_key


def cache_key(adapters: list[dict[str, Any]], fan_out: bool, collect: bool,
              input_hash: str) -> str:
    """What makes two runs of a step interchangeable: the same input bytes
    through the same adapters with the same parameters.

    Handler code is named, not hashed: after changing a handler's body, change
    a parameter (or its name) to stop reusing old outputs.
    """
    spec = {"adapters": adapters, "fan_out": fan_out, "collect": collect}
    canonical = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
    return content_hash(canonical + b"\n" + input_hash.encode())
