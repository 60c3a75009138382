"""Opening stores and single objects by location: open_store, open_uri, read_uri, store_from_settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from nightbatch.config import Settings
from nightbatch.errors import ConfigError, StorageError
from nightbatch.storage import (
    LocalObjectStore,
    S3ObjectStore,
    open_store,
    open_uri,
    read_uri,
    store_from_settings,
    validate_key,
)
from nightbatch.storage import __all__ as storage_all


def test_public_api_is_pinned() -> None:
    assert sorted(storage_all) == [
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


def test_s3_location_gives_an_s3_store(aws_env: dict[str, str]) -> None:
    store = open_store("s3://bucket-name/some/prefix/", endpoint_url="http://127.0.0.1:1")
    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix) == ("bucket-name", "some/prefix/")
    assert store.extra_args == {"ServerSideEncryption": "AES256"}
    assert store.uri("k") == "s3://bucket-name/some/prefix/k"
    assert repr(store) == "S3ObjectStore('s3://bucket-name/some/prefix')"


@pytest.mark.parametrize("location", ["gs://bucket/x", "http://example.com/x", "file://otherhost/x"])
def test_unsupported_locations_are_config_errors(location: str) -> None:
    with pytest.raises(ConfigError, match=r"only local file URIs|unsupported store location"):
        open_store(location)


def test_open_and_read_an_s3_object_by_uri(s3_bucket: str, s3_endpoint_url: str) -> None:
    open_store(f"s3://{s3_bucket}", endpoint_url=s3_endpoint_url).put_bytes("in/tasks.jsonl", b'{"a":1}\n{"a":2}\n')
    uri = f"s3://{s3_bucket}/in/tasks.jsonl"
    with open_uri(uri, endpoint_url=s3_endpoint_url) as lines:
        assert list(lines) == [b'{"a":1}\n', b'{"a":2}\n']
    assert read_uri(uri, endpoint_url=s3_endpoint_url) == b'{"a":1}\n{"a":2}\n'
    with pytest.raises(StorageError, match=f"no object at s3://{s3_bucket}/in/missing.jsonl"):
        read_uri(f"s3://{s3_bucket}/in/missing.jsonl", endpoint_url=s3_endpoint_url)
    with pytest.raises(ConfigError, match="not an object"):
        open_uri(f"s3://{s3_bucket}/in/", endpoint_url=s3_endpoint_url)


def test_open_and_read_a_local_object_by_path_or_uri(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b"x\ny\n")
    assert read_uri(path) == b"x\ny\n"
    assert read_uri(path.as_uri()) == b"x\ny\n"
    with open_uri(str(path)) as lines:
        assert list(lines) == [b"x\n", b"y\n"]
    with pytest.raises(StorageError, match="no object at file://"):
        read_uri(tmp_path / "missing.jsonl")


def test_store_from_settings(tmp_path: Path, aws_env: dict[str, str]) -> None:
    local = store_from_settings(Settings(output=str(tmp_path / "out")))
    assert isinstance(local, LocalObjectStore)
    assert local.root == tmp_path / "out"
    s3 = store_from_settings(
        Settings(output="s3://b-1/p", s3_endpoint_url="http://127.0.0.1:1", s3_sse="aws:kms", s3_kms_key_id="k")
    )
    assert isinstance(s3, S3ObjectStore)
    assert s3.extra_args == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"}


def test_bad_sse_fails_even_for_a_local_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="s3_sse"):
        open_store(str(tmp_path), sse="rot13")


@pytest.mark.parametrize("key", ["a", "a/b/c.jsonl", "dots.in.name", ".hidden/x", "a-b_c~d@e"])
def test_valid_keys(key: str) -> None:
    assert validate_key(key) == key
