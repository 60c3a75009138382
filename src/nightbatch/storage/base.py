"""The object-store port: where nightbatch puts request files, raw results and archives.

One interface, :class:`ObjectStore`, with two implementations that share the same key layout: a local
folder (:mod:`nightbatch.storage.local`) and an S3 bucket prefix (:mod:`nightbatch.storage.s3`).

Keys are relative, ``/``-separated paths such as ``runs/2026-11-03/batch_01/results.jsonl``. They are
validated (:func:`validate_key`) so that a key can never climb out of its store, and they mean the same
object on both stores. Every failure, from the OS or from boto3, surfaces as
:class:`~nightbatch.errors.StorageError` naming the object's URI.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

from nightbatch.errors import StorageError

__all__ = ["MAX_KEY_BYTES", "ObjectInfo", "ObjectStore", "validate_key", "validate_prefix"]

#: S3's limit on a key (which also includes the store's own prefix).
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object, as listed: its key relative to the store and its size in bytes."""

    key: str
    size: int


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise :class:`StorageError` saying why.

    A key is a non-empty, relative, ``/``-separated path: no leading or trailing ``/``, no empty,
    ``.`` or ``..`` segments, no backslashes or control characters, at most 1,024 bytes in UTF-8.
    """
    problem = _key_problem(key)
    if problem:
        raise StorageError(f"invalid object key {key!r}: {problem}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it may start keys: ``""`` or a valid key, optionally ending in ``/``."""
    if prefix == "":
        return prefix
    problem = _key_problem(prefix[:-1] if prefix.endswith("/") else prefix)
    if problem:
        raise StorageError(f"invalid key prefix {prefix!r}: {problem}")
    return prefix


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return "keys are strings"
    if not key:
        return "empty"
    if key.startswith("/"):
        return "keys are relative: no leading '/'"
    if key.endswith("/"):
        return "a key names an object, not a folder: no trailing '/'"
    if "\\" in key:
        return "use '/' to separate segments, not '\\'"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        return "control characters are not allowed"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return f"empty, '.' and '..' segments are not allowed (found {segment!r})"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"longer than {MAX_KEY_BYTES} bytes"
    return None


class ObjectStore(abc.ABC):
    """A flat namespace of byte objects under one root (a folder, or an S3 bucket and prefix).

    Writes are all-or-nothing: a reader sees either the previous object or the complete new one.
    Methods taking a key raise :class:`StorageError` for an invalid key and for any failure underneath.
    """

    @property
    @abc.abstractmethod
    def root_uri(self) -> str:
        """The URI of the store itself: ``file:///abs/folder`` or ``s3://bucket/prefix``."""

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """The URI of the object at ``key``: ``file:///abs/folder/key`` or ``s3://bucket/prefix/key``."""

    @abc.abstractmethod
    def writer(self, key: str, content_type: str | None = None) -> AbstractContextManager[BinaryIO]:
        """Stream a new object: ``with store.writer(key) as f: f.write(...)``.

        Data goes to a temporary file; on a clean exit the object is published atomically (replacing any
        old one), and on an exception nothing is published. Suited to objects of any size.
        """

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """Open the object for streaming reads (iterate it for lines). The caller closes it."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a plain string prefix), in key order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object at ``key``; deleting a missing object is not an error."""

    def clean_leftovers(self) -> int:
        """Remove temporary files writers killed mid-write left behind; how many (see storage.leftovers)."""
        return 0

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        """Store ``data`` at ``key`` atomically (replacing any old object) and return the object's URI."""
        with self.writer(key, content_type) as out:
            out.write(data)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        """The whole object at ``key``; prefer :meth:`open_read` for large objects."""
        with self.open_read(key) as stream:
            try:
                return stream.read()
            except OSError as exc:
                raise StorageError(f"reading {self.uri(key)} failed: {exc}") from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_uri!r})"
