"""The object store in S3 (or anything speaking its API: MinIO, moto): key ``k`` is ``s3://bucket/prefix/k``.

Credentials and region come from boto3's normal chain (environment, ``~/.aws``, instance or task role),
never from nightbatch's config; only the endpoint (for MinIO / moto) and the server-side encryption
are ours to set. Every put carries ``ServerSideEncryption`` (``AES256`` by default, or ``aws:kms`` with an
optional ``SSEKMSKeyId``) unless encryption is set to ``none``.

:meth:`S3ObjectStore.writer` spools to a local temporary file (``$TMPDIR``) and uploads it on a clean
exit with ``upload_fileobj``, which switches to a multipart upload above ``multipart_threshold``; S3
publishes an object only when its upload completes, so readers never see half an object.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import boto3
import botocore.session
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from nightbatch.errors import ConfigError, StorageError
from nightbatch.storage.base import ObjectInfo, ObjectStore, validate_key, validate_prefix
from nightbatch.storage.leftovers import clean_parts, part_tag

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

__all__ = ["SSE_CHOICES", "S3ObjectStore", "S3Uri", "is_s3_uri", "parse_s3_uri", "sse_extra_args"]

MiB = 1024 * 1024
#: Accepted values of the ``sse`` setting (case-insensitive for ``none``).
SSE_CHOICES = ("AES256", "aws:kms", "none")

_BOTO_ERRORS = (BotoCoreError, ClientError, Boto3Error)
SPOOL_PREFIX = "nightbatch-s3-"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_CREDENTIAL_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)


# -- s3:// URIs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Uri:
    """A parsed ``s3://bucket/key`` URI; ``key`` may be empty (the bucket) or a prefix ending in ``/``."""

    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    def describe(self) -> str:
        """Human wording for messages: ``S3 bucket 'b', key 'k'``."""
        return f"S3 bucket {self.bucket!r}" + (f", key {self.key!r}" if self.key else "")


def is_s3_uri(location: str) -> bool:
    """Whether ``location`` is an ``s3://`` URI (by scheme alone)."""
    return location[:5].lower() == "s3://"


def parse_s3_uri(uri: str) -> S3Uri:
    """Split ``s3://bucket/some/key`` into bucket and key; :class:`ConfigError` if it is not one."""
    if not is_s3_uri(uri):
        raise ConfigError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    bucket, _, key = uri[5:].partition("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ConfigError(
            f"{uri!r}: {bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, '.' or '-')"
        )
    if key:
        try:
            validate_prefix(key)
        except StorageError as exc:
            raise ConfigError(f"{uri!r}: {exc}") from None
    return S3Uri(bucket=bucket, key=key)


def sse_extra_args(sse: str | None, kms_key_id: str | None = None) -> dict[str, str]:
    """The put arguments for an ``sse`` setting (``AES256``, ``aws:kms``, ``none``/None); ConfigError if bad."""
    mode = (sse or "none").strip()
    if mode.lower() == "none":
        if kms_key_id:
            raise ConfigError("s3_kms_key_id is set but s3_sse is 'none'; set s3_sse to 'aws:kms' or drop the key id")
        return {}
    if mode == "AES256":
        if kms_key_id:
            raise ConfigError("s3_kms_key_id is set but s3_sse is 'AES256'; set s3_sse to 'aws:kms' to use KMS")
        return {"ServerSideEncryption": "AES256"}
    if mode == "aws:kms":
        args = {"ServerSideEncryption": "aws:kms"}
        if kms_key_id:
            args["SSEKMSKeyId"] = kms_key_id
        return args
    raise ConfigError(f"s3_sse must be one of {', '.join(SSE_CHOICES)}; got {sse!r}")


# -- the store ----------------------------------------------------------------------------------------------


class S3ObjectStore(ObjectStore):
    """Objects under ``s3://bucket/prefix/``.

    ``client`` is an optional ready boto3 S3 client (its endpoint and credentials are then its own);
    otherwise one is made from the default chain, pointed at ``endpoint_url`` with path-style addressing
    when one is given (MinIO, moto).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: S3Client | None = None,
        endpoint_url: str | None = None,
        sse: str | None = "AES256",
        kms_key_id: str | None = None,
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
    ) -> None:
        location = parse_s3_uri(f"s3://{bucket}/{prefix.strip('/')}")
        self.bucket = location.bucket
        self.prefix = f"{location.key}/" if location.key else ""
        self.extra_args = sse_extra_args(sse, kms_key_id)
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize, use_threads=True
        )
        self.client: S3Client = client if client is not None else make_s3_client(endpoint_url)

    @property
    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _args(self, content_type: str | None) -> dict[str, str]:
        return {**self.extra_args, "ContentType": content_type} if content_type else dict(self.extra_args)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        full, uri = self._key(key), self.uri(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data, **cast(Any, self._args(content_type)))
        except _BOTO_ERRORS as exc:
            raise _storage_error("writing", uri, exc) from exc
        return uri

    @contextlib.contextmanager
    def writer(self, key: str, content_type: str | None = None) -> Iterator[BinaryIO]:
        full, uri = self._key(key), self.uri(key)
        try:
            fd, spool_name = tempfile.mkstemp(prefix=SPOOL_PREFIX + part_tag(), suffix=".part")
        except OSError as exc:
            raise StorageError(f"cannot start writing {uri}: no local temporary file ({exc})") from exc
        # A named spool, reopened for the upload, so a caller that closes the file early (as
        # io.TextIOWrapper does when it is closed) loses nothing: the same contract as the local store.
        try:
            try:
                with os.fdopen(fd, "wb") as out:
                    yield out
            except OSError as exc:
                raise StorageError(f"writing {uri} failed, nothing was uploaded: {exc}") from exc
            try:
                with open(spool_name, "rb") as spool:
                    self.client.upload_fileobj(
                        spool, self.bucket, full, ExtraArgs=self._args(content_type), Config=self.transfer_config
                    )
            except OSError as exc:
                raise StorageError(f"uploading {uri} failed: {exc}") from exc
            except _BOTO_ERRORS as exc:
                raise _storage_error("uploading", uri, exc) from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(spool_name)

    def clean_leftovers(self) -> int:
        """Remove the upload spools killed writers left in the system temp dir."""
        return clean_parts(Path(tempfile.gettempdir()), prefix=SPOOL_PREFIX)

    def open_read(self, key: str) -> BinaryIO:
        full, uri = self._key(key), self.uri(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        except _BOTO_ERRORS as exc:
            raise _storage_error("reading", uri, exc) from exc
        return cast(BinaryIO, io.BufferedReader(_BodyReader(body, uri), buffer_size=1 * MiB))

    def exists(self, key: str) -> bool:
        full, uri = self._key(key), self.uri(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return False
            raise _storage_error("checking", uri, exc) from exc
        except _BOTO_ERRORS as exc:
            raise _storage_error("checking", uri, exc) from exc
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)  # eagerly, not on the first next()
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        uri = f"s3://{self.bucket}/{self.prefix}{prefix}"
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(key=item["Key"][len(self.prefix) :], size=item["Size"])
        except _BOTO_ERRORS as exc:
            raise _storage_error("listing", uri, exc) from exc

    def delete(self, key: str) -> None:
        full, uri = self._key(key), self.uri(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except _BOTO_ERRORS as exc:
            raise _storage_error("deleting", uri, exc) from exc


def make_s3_client(endpoint_url: str | None = None) -> S3Client:
    """A boto3 S3 client from the default credential chain, optionally pointed at ``endpoint_url``."""
    # A Session per client (sessions are not thread-safe, and each resolves credentials afresh), but one
    # shared loader of botocore's service models: that cuts client creation from ~60 ms to ~8 ms.
    core = botocore.session.Session()
    core.register_component("data_loader", _shared_data_loader())
    session = boto3.session.Session(botocore_session=core)
    try:
        if endpoint_url:
            # S3-compatible servers (MinIO, moto) rarely have wildcard DNS for virtual-hosted buckets.
            return session.client("s3", endpoint_url=endpoint_url, config=Config(s3={"addressing_style": "path"}))
        return session.client("s3")
    except (BotoCoreError, ValueError) as exc:
        raise ConfigError(f"cannot create an S3 client (endpoint {endpoint_url or 'AWS default'}): {exc}") from exc


@functools.cache
def _shared_data_loader() -> Any:
    return botocore.session.get_session().get_component("data_loader")


class _BodyReader(io.RawIOBase):
    """A botocore ``StreamingBody`` as a raw stream, so ``io.BufferedReader`` can add readline and iteration."""

    def __init__(self, body: StreamingBody, uri: str) -> None:
        self._body = body
        self._uri = uri

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            chunk = self._body.read(len(view))
        except _BOTO_ERRORS as exc:
            raise _storage_error("reading", self._uri, exc) from exc
        view[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _storage_error(action: str, uri: str, exc: Exception) -> StorageError:
    """A StorageError naming the URI, with a hint for the failures people actually hit."""
    hint = ""
    code = _error_code(exc) if isinstance(exc, ClientError) else ""
    if isinstance(exc, NoCredentialsError) or code in _CREDENTIAL_CODES:
        hint = " (check the AWS credentials boto3 finds: environment, ~/.aws, or an instance/task role)"
    elif code == "NoSuchBucket":
        hint = " (the bucket does not exist: create it or fix the output location)"
    if code in _NOT_FOUND_CODES:
        return StorageError(f"no object at {uri}")
    return StorageError(f"{action} {uri} failed: {exc}{hint}")
