"""Stage item bytes that are too large to keep inline, on any fsspec URL."""

from __future__ import annotations

import posixpath
from typing import Any

import fsspec
from fsspec.core import url_to_fs


class StorageUnavailable(Exception):
    """Stage storage could not be read or written."""


class MissingItem(LookupError):
    """A stored item's bytes are not where the database says they are."""


class BlobStore:
    """Reads and writes item bytes below one root URL.

    Paths are relative (`{execution_id}/{stage}/{item_key}`), so a database
    can be moved with its storage root.
    """

    def __init__(self, root: str, **options: Any) -> None:
        self.root = root.rstrip("/")
        self.fs, self._base = url_to_fs(self.root, **options)
        self._local = "file" in _protocols(self.fs)

    def _full(self, path: str) -> str:
        return posixpath.join(self._base, path)

    def put(self, path: str, data: bytes) -> None:
        full = self._full(path)
        try:
            if self._local:
                self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
            self.fs.pipe_file(full, data)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {path}: {exc}") from exc

    def get(self, path: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._full(path)))
        except FileNotFoundError as exc:
            raise MissingItem(path) from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}: {exc}") from exc

    def exists(self, path: str) -> bool:
        try:
            return bool(self.fs.exists(self._full(path)))
        except OSError as exc:
            raise StorageUnavailable(str(exc)) from exc

    def files_under(self, path: str) -> list[tuple[str, bytes]]:
        """Every file at or below `path`, as (path relative to it, bytes), in order."""
        root = self._full(path.strip("/"))
        try:
            if not self.fs.exists(root):
                return []
            if self.fs.isfile(root):
                return [(posixpath.basename(root), bytes(self.fs.cat_file(root)))]
            found = sorted(p for p in self.fs.find(root)
                           if not posixpath.basename(p).startswith("."))
            return [(posixpath.relpath(p, root), bytes(self.fs.cat_file(p))) for p in found]
        except OSError as exc:
            raise StorageUnavailable(f"cannot list {path}: {exc}") from exc

    def url(self, path: str) -> str:
        return f"{self.root}/{path}"

    def ping(self) -> None:
        """Raise StorageUnavailable when the root cannot be reached."""
        try:
            if self._local:
                self.fs.makedirs(self._base, exist_ok=True)
            self.fs.ls(self._base)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable(str(exc)) from exc


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)
