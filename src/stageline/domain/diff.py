"""Comparing two executions' stages item by item. Pure."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Change(StrEnum):
    ADDED = "added"  # only in the second execution
    REMOVED = "removed"  # only in the first
    CHANGED = "changed"  # in both, different content
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ItemChange:
    key: str
    change: Change
    a_hash: str | None
    b_hash: str | None


@dataclass
class StageDiff:
    stage: str
    counts: dict[Change, int] = field(default_factory=lambda: dict.fromkeys(Change, 0))
    items: list[ItemChange] = field(default_factory=list)


def diff_stage(stage: str, a: dict[str, str], b: dict[str, str]) -> StageDiff:
    """Items are matched by key, which follows lineage origin (a fan-out's
    children extend their parent's key), and compared by content hash."""
    result = StageDiff(stage)
    for key in sorted(a.keys() | b.keys()):
        change = _classify(a.get(key), b.get(key))
        result.counts[change] += 1
        if change != Change.UNCHANGED:
            result.items.append(ItemChange(key, change, a.get(key), b.get(key)))
    return result


def _classify(a_hash: str | None, b_hash: str | None) -> Change:
    if a_hash is None:
        return Change.ADDED
    if b_hash is None:
        return Change.REMOVED
    return Change.UNCHANGED if a_hash == b_hash else Change.CHANGED


def unified(a: Any, b: Any, a_name: str, b_name: str) -> str:
    """A unified text diff of two item values (JSON values pretty-printed)."""
    return "".join(difflib.unified_diff(_lines(a), _lines(b), a_name, b_name))


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
    return [line + "\n" for line in text.splitlines()]
