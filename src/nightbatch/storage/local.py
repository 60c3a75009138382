"""The object store as a local folder: key ``a/b.jsonl`` is the file ``<root>/a/b.jsonl``.

Writes go to a temporary file under ``<root>/.nightbatch-tmp/`` (same filesystem, so the final
``os.replace`` is atomic) and are fsynced before they are published. That folder is not part of the
key space: keys may not start with it and listings skip it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from nightbatch.errors import StorageError
from nightbatch.storage.base import ObjectInfo, ObjectStore, validate_key, validate_prefix
from nightbatch.storage.leftovers import clean_parts, part_tag

__all__ = ["TMP_DIR_NAME", "LocalObjectStore"]

#: Folder under the root holding writes in progress; reserved, never a key.
TMP_DIR_NAME = ".nightbatch-tmp"


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root`` (created if missing)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the object store folder {self.root}: {exc}") from exc
        if not self.root.is_dir():
            raise StorageError(f"object store location {self.root} exists but is not a folder")

    @property
    def root_uri(self) -> str:
        return self.root.as_uri()

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def _path(self, key: str) -> Path:
        validate_key(key)
        if key.split("/", 1)[0] == TMP_DIR_NAME:
            raise StorageError(f"invalid object key {key!r}: {TMP_DIR_NAME}/ is reserved for writes in progress")
        return self.root / key

    @contextlib.contextmanager
    def writer(self, key: str, content_type: str | None = None) -> Iterator[BinaryIO]:
        # content_type has no place on a plain file; it is accepted for interface parity with S3.
        target = self._path(key)
        uri = target.as_uri()
        tmp_dir = self.root / TMP_DIR_NAME
        try:
            tmp_dir.mkdir(exist_ok=True)
            prefix = target.name[:64] + "." + part_tag()  # whose it is, for clean_leftovers after a kill
            fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=prefix, suffix=".part")
        except OSError as exc:
            raise StorageError(f"cannot start writing {uri}: {exc}") from exc
        tmp = Path(tmp_name)
        published = False
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
                if not out.closed:  # a caller that closed it early has flushed it already
                    out.flush()
                    os.fsync(out.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
            published = True
        except OSError as exc:
            # Also covers write() failures inside the caller's block (disk full, ...).
            raise StorageError(f"writing {uri} failed, nothing was published: {exc}") from exc
        finally:
            if not published:
                tmp.unlink(missing_ok=True)

    def clean_leftovers(self) -> int:
        """Remove the ``.part`` files killed writers left in ``<root>/.nightbatch-tmp/``."""
        return clean_parts(self.root / TMP_DIR_NAME)

    def open_read(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise StorageError(f"no object at {path.as_uri()}") from None
        except OSError as exc:
            raise StorageError(f"cannot open {path.as_uri()}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)  # eagerly, not on the first next()
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only the deepest folder the prefix pins down, then filter by the string prefix.
        start = self.root.joinpath(*prefix.split("/")[:-1])
        if not start.is_dir():
            return
        found: dict[str, int] = {}
        try:
            for folder, dirnames, filenames in os.walk(start, onerror=_raise):
                here = Path(folder)
                if here == self.root and TMP_DIR_NAME in dirnames:
                    dirnames.remove(TMP_DIR_NAME)
                rel = here.relative_to(self.root).as_posix()
                for name in filenames:
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix):
                        with contextlib.suppress(FileNotFoundError):  # deleted while we walked
                            found[key] = (here / name).stat().st_size
        except OSError as exc:
            raise StorageError(f"listing {self.root_uri}/{prefix} failed: {exc}") from exc
        # Sorted by UTF-8 bytes, the order S3 lists in, so both stores list alike.
        for key in sorted(found, key=lambda k: k.encode("utf-8")):
            yield ObjectInfo(key=key, size=found[key])

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"deleting {path.as_uri()} failed: {exc}") from exc


def _raise(exc: OSError) -> None:
    raise exc
