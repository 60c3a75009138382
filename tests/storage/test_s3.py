"""What only the S3 store does: encryption headers, multipart uploads, paginated listings, boto3 errors."""

from __future__ import annotations

import hashlib
import http.client
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.config import Config

from nightbatch.errors import ConfigError, StorageError
from nightbatch.storage import S3ObjectStore, S3Uri, open_store, parse_s3_uri, sse_extra_args

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024


@pytest.fixture
def store(s3_bucket: str, s3_endpoint_url: str) -> S3ObjectStore:
    opened = open_store(f"s3://{s3_bucket}/nb", endpoint_url=s3_endpoint_url)
    assert isinstance(opened, S3ObjectStore)
    return opened


def record_calls(store: S3ObjectStore, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call the store's client makes from now on."""
    calls: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    store.client.meta.events.register(f"provide-client-params.s3.{operation}", capture)
    return calls


def test_layout_under_the_prefix(store: S3ObjectStore, s3_client: S3Client, s3_bucket: str) -> None:
    assert store.root_uri == f"s3://{s3_bucket}/nb"
    assert store.put_bytes("runs/a.json", b"{}") == f"s3://{s3_bucket}/nb/runs/a.json"
    assert s3_client.get_object(Bucket=s3_bucket, Key="nb/runs/a.json")["Body"].read() == b"{}"


def test_store_at_the_bucket_root(s3_bucket: str, s3_endpoint_url: str, s3_client: S3Client) -> None:
    store = open_store(f"s3://{s3_bucket}", endpoint_url=s3_endpoint_url)
    assert store.root_uri == f"s3://{s3_bucket}"
    assert store.put_bytes("k.txt", b"v") == f"s3://{s3_bucket}/k.txt"
    assert [o.key for o in store.list()] == ["k.txt"]
    assert s3_client.head_object(Bucket=s3_bucket, Key="k.txt")["ContentLength"] == 1


def test_every_put_is_encrypted_by_default(store: S3ObjectStore, s3_client: S3Client, s3_bucket: str) -> None:
    store.put_bytes("put.json", b"{}", content_type="application/json")
    with store.writer("written.jsonl") as out:
        out.write(b"{}\n")
    for key in ("nb/put.json", "nb/written.jsonl"):
        head = s3_client.head_object(Bucket=s3_bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256"
    assert s3_client.head_object(Bucket=s3_bucket, Key="nb/put.json")["ContentType"] == "application/json"


def test_kms_encryption_sends_the_key_id(s3_bucket: str, s3_endpoint_url: str) -> None:
    store = open_store(f"s3://{s3_bucket}", endpoint_url=s3_endpoint_url, sse="aws:kms", kms_key_id="alias/nb")
    assert isinstance(store, S3ObjectStore)
    puts = record_calls(store, "PutObject")
    store.put_bytes("k", b"v")
    assert puts[0]["ServerSideEncryption"] == "aws:kms"
    assert puts[0]["SSEKMSKeyId"] == "alias/nb"


def test_encryption_none_sends_no_header(s3_bucket: str, s3_endpoint_url: str) -> None:
    store = open_store(f"s3://{s3_bucket}", endpoint_url=s3_endpoint_url, sse="none")
    assert isinstance(store, S3ObjectStore)
    puts = record_calls(store, "PutObject")
    store.put_bytes("k", b"v")
    with store.writer("w") as out:
        out.write(b"v")
    assert len(puts) == 2
    assert all("ServerSideEncryption" not in call for call in puts)


@pytest.mark.parametrize(
    ("sse", "kms_key_id", "expected"),
    [
        ("AES256", None, {"ServerSideEncryption": "AES256"}),
        ("aws:kms", None, {"ServerSideEncryption": "aws:kms"}),
        ("aws:kms", "k1", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k1"}),
        ("none", None, {}),
        ("NONE", None, {}),
        (None, None, {}),
    ],
)
def test_sse_settings(sse: str | None, kms_key_id: str | None, expected: dict[str, str]) -> None:
    assert sse_extra_args(sse, kms_key_id) == expected


@pytest.mark.parametrize(("sse", "kms_key_id"), [("aes256", None), ("kms", None), ("AES256", "k1"), ("none", "k1")])
def test_bad_sse_settings_are_config_errors(sse: str, kms_key_id: str | None) -> None:
    with pytest.raises(ConfigError, match="s3_"):
        open_store("s3://some-bucket/p", sse=sse, kms_key_id=kms_key_id)


def test_big_writer_goes_multipart_and_encrypted(store: S3ObjectStore, s3_client: S3Client, s3_bucket: str) -> None:
    block = hashlib.sha256(b"seed").digest() * (MiB // 32)  # 1 MiB, not all zeros
    creates = record_calls(store, "CreateMultipartUpload")
    digest = hashlib.sha256()
    with store.writer("archives/run.tar", content_type="application/x-tar") as out:
        for _ in range(9):  # 9 MiB > the 8 MiB threshold: an 8 MiB part and a 1 MiB part
            out.write(block)
            digest.update(block)
    assert len(creates) == 1
    head = s3_client.head_object(Bucket=s3_bucket, Key="nb/archives/run.tar")
    assert head["ETag"].strip('"').endswith("-2")  # the ETag of a two-part upload
    assert head["ContentLength"] == 9 * MiB
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "application/x-tar"
    read_back = hashlib.sha256()
    with store.open_read("archives/run.tar") as stream:
        while chunk := stream.read(MiB):
            read_back.update(chunk)
    assert read_back.hexdigest() == digest.hexdigest()


def seed_objects(endpoint_url: str, bucket: str, keys: list[str]) -> None:
    """PUT tiny objects over one keep-alive connection, unsigned: ~2 ms each against moto vs ~4 ms with boto3.

    Sequential on purpose: moto answers some concurrent PUTs into one bucket with errors.
    """
    url = urlsplit(endpoint_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
    try:
        for key in keys:
            conn.request("PUT", f"/{bucket}/{quote(key)}", body=b"{}")
            response = conn.getresponse()
            response.read()
            assert response.status == 200, (key, response.status)
    finally:
        conn.close()


def test_listing_pages_past_1000_keys(
    store: S3ObjectStore, s3_client: S3Client, s3_bucket: str, s3_endpoint_url: str
) -> None:
    keys = [f"many/{i:04d}.json" for i in range(1_001)]
    seed_objects(s3_endpoint_url, s3_bucket, [f"nb/{key}" for key in keys])
    s3_client.put_object(Bucket=s3_bucket, Key="outside-the-prefix.json", Body=b"{}")
    pages = record_calls(store, "ListObjectsV2")
    listed = list(store.list("many/"))
    assert [info.key for info in listed] == keys
    assert {info.size for info in listed} == {2}
    assert len(pages) == 2  # 1,000 + 1
    assert pages[1]["ContinuationToken"]
    assert len(list(store.list())) == 1_001


def test_missing_bucket_errors_name_the_uri(s3_endpoint_url: str, aws_env: dict[str, str]) -> None:
    store = open_store("s3://no-such-bucket-here/p", endpoint_url=s3_endpoint_url)
    with pytest.raises(StorageError, match=r"s3://no-such-bucket-here/p/k\.json.*bucket does not exist"):
        store.put_bytes("k.json", b"{}")
    # The upload, at the end of the writer block, is what fails.
    with (
        pytest.raises(StorageError, match=r"s3://no-such-bucket-here/p/w.*bucket does not exist"),
        store.writer("w") as out,
    ):
        out.write(b"x")
    with pytest.raises(StorageError, match="listing s3://no-such-bucket-here/p/x"):
        list(store.list("x"))
    with pytest.raises(StorageError, match="s3://no-such-bucket-here/p/k"):
        store.delete("k")


def test_unreachable_endpoint_is_a_storage_error(aws_env: dict[str, str]) -> None:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, s3={"addressing_style": "path"}),
    )
    store = S3ObjectStore("some-bucket", "p", client=client)
    with pytest.raises(StorageError, match=r"s3://some-bucket/p/k"):
        store.exists("k")
    with pytest.raises(StorageError, match=r"reading s3://some-bucket/p/k"):
        store.get_bytes("k")


# -- s3:// URIs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "bucket", "key"),
    [
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
        ("s3://my.bucket-1/a/b.jsonl", "my.bucket-1", "a/b.jsonl"),
        ("S3://bucket/prefix/", "bucket", "prefix/"),
    ],
)
def test_parse_s3_uri(uri: str, bucket: str, key: str) -> None:
    assert parse_s3_uri(uri) == S3Uri(bucket, key)


@pytest.mark.parametrize("uri", ["s3://", "s3://Upper/x", "s3://ab/x", "s3://b..c/x", "s3://bucket/../x", "gs://b/k"])
def test_parse_bad_s3_uri(uri: str) -> None:
    with pytest.raises(ConfigError):
        parse_s3_uri(uri)


def test_s3_uri_describes_itself() -> None:
    uri = parse_s3_uri("s3://bucket/k.jsonl")
    assert str(uri) == "s3://bucket/k.jsonl"
    assert uri.describe() == "S3 bucket 'bucket', key 'k.jsonl'"
    assert str(parse_s3_uri("s3://bucket")) == "s3://bucket"
