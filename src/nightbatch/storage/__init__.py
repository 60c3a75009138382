"""The object store: request files, raw results and archives, in a local folder or in S3.

::

    store = open_store("s3://my-bucket/nightbatch")        # or a folder: open_store(".nightbatch/output")
    store.put_bytes("runs/2026-11-03/summary.json", b"{}", content_type="application/json")
    # -> 's3://my-bucket/nightbatch/runs/2026-11-03/summary.json'
    with store.writer("runs/2026-11-03/results.jsonl.gz") as out:   # streamed, published atomically
        shutil.copyfileobj(source, out)
    with open_uri("s3://other-bucket/tasks.jsonl") as lines:       # any object by full URI, streamed
        for line in lines: ...

Both stores take the same keys (see :func:`~nightbatch.storage.base.validate_key`) and raise
:class:`~nightbatch.errors.StorageError` naming the object's URI on any failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlparse

from nightbatch.errors import ConfigError, StorageError
from nightbatch.storage.base import ObjectInfo, ObjectStore, validate_key, validate_prefix
from nightbatch.storage.local import LocalObjectStore
from nightbatch.storage.s3 import S3ObjectStore, S3Uri, is_s3_uri, make_s3_client, parse_s3_uri, sse_extra_args

if TYPE_CHECKING:
    from nightbatch.config import Settings

__all__ = [
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "S3ObjectStore",
    "S3Uri",
    "is_s3_uri",
    "make_s3_client",
    "open_store",
    "open_uri",
    "parse_s3_uri",
    "read_uri",
    "sse_extra_args",
    "store_from_settings",
    "validate_key",
    "validate_prefix",
]


def open_store(
    location: str | Path,
    *,
    endpoint_url: str | None = None,
    sse: str | None = "AES256",
    kms_key_id: str | None = None,
) -> ObjectStore:
    """The store at ``location``: ``s3://bucket/prefix`` for S3, otherwise a local folder (created if missing).

    ``endpoint_url``, ``sse`` and ``kms_key_id`` apply to S3 only; the SSE setting is still validated for
    a local folder so that a typo in the config fails before the first upload, not in production.
    """
    sse_extra_args(sse, kms_key_id)
    text = str(location)
    if is_s3_uri(text):
        uri = parse_s3_uri(text)
        return S3ObjectStore(uri.bucket, uri.key, endpoint_url=endpoint_url, sse=sse, kms_key_id=kms_key_id)
    return LocalObjectStore(_local_path(text))


def store_from_settings(settings: Settings) -> ObjectStore:
    """The output store the settings describe (``output``, ``s3_endpoint_url``, ``s3_sse``, ``s3_kms_key_id``)."""
    return open_store(
        settings.resolved_output,
        endpoint_url=settings.s3_endpoint_url,
        sse=settings.s3_sse,
        kms_key_id=settings.s3_kms_key_id,
    )


def open_uri(uri: str | Path, *, endpoint_url: str | None = None) -> BinaryIO:
    """Open one object for streaming reads by its full URI: ``s3://bucket/key``, ``file:///path`` or a path.

    The caller closes the stream; iterate it for lines (JSONL). Raises StorageError naming the URI.
    """
    text = str(uri)
    if is_s3_uri(text):
        location = parse_s3_uri(text)
        if not location.key or location.key.endswith("/"):
            raise ConfigError(f"{text!r} names a bucket or prefix, not an object")
        return S3ObjectStore(location.bucket, endpoint_url=endpoint_url, sse=None).open_read(location.key)
    path = Path(_local_path(text))
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise StorageError(f"no object at {path.absolute().as_uri()}") from None
    except OSError as exc:
        raise StorageError(f"cannot open {path.absolute().as_uri()}: {exc}") from exc


def read_uri(uri: str | Path, *, endpoint_url: str | None = None) -> bytes:
    """The whole object at a full URI (see :func:`open_uri`)."""
    with open_uri(uri, endpoint_url=endpoint_url) as stream:
        try:
            return stream.read()
        except OSError as exc:
            raise StorageError(f"reading {uri} failed: {exc}") from exc


def _local_path(location: str) -> str:
    if location.startswith("file://"):
        parsed = urlparse(location)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"{location!r}: only local file URIs are supported (file:///abs/path)")
        return unquote(parsed.path)
    if "://" in location:
        raise ConfigError(f"unsupported store location {location!r}: use s3://bucket/prefix or a local folder")
    return location
