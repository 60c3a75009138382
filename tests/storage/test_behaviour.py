"""One behaviour suite, run on both stores (``object_store`` is parametrised: local folder and S3 via moto)."""

from __future__ import annotations

import hashlib
import io

import pytest

from nightbatch.errors import StorageError
from nightbatch.storage import ObjectInfo, ObjectStore


def test_put_and_get_round_trip(object_store: ObjectStore) -> None:
    uri = object_store.put_bytes("runs/r1/summary.json", b'{"ok": true}', content_type="application/json")
    assert uri == object_store.uri("runs/r1/summary.json")
    assert object_store.get_bytes("runs/r1/summary.json") == b'{"ok": true}'
    assert object_store.exists("runs/r1/summary.json")
    assert not object_store.exists("runs/r1/other.json")


def test_put_replaces_and_empty_objects_are_fine(object_store: ObjectStore) -> None:
    object_store.put_bytes("k", b"first version")
    object_store.put_bytes("k", b"")
    assert object_store.get_bytes("k") == b""
    assert list(object_store.list()) == [ObjectInfo("k", 0)]


def test_uri_names_the_store_and_key(object_store: ObjectStore) -> None:
    uri = object_store.uri("a/b.jsonl")
    assert uri == f"{object_store.root_uri}/a/b.jsonl"
    assert uri.startswith(("file:///", "s3://"))


def test_writer_streams_and_reader_streams_lines(object_store: ObjectStore) -> None:
    lines = [f'{{"custom_id": "t{i:05d}", "pad": "{"x" * 90}"}}\n'.encode() for i in range(30_000)]
    with object_store.writer("results/batch.jsonl", content_type="application/x-ndjson") as out:
        for line in lines:
            out.write(line)
    with object_store.open_read("results/batch.jsonl") as stream:
        head = stream.read(5)
        assert head == lines[0][:5]
        rest = list(stream)
    assert head + rest[0] == lines[0]
    assert rest[1:] == lines[1:]
    assert next(iter(object_store.list("results/"))).size == sum(map(len, lines))


def test_reads_can_be_chunked(object_store: ObjectStore) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    object_store.put_bytes("blob.bin", data)
    digest = hashlib.sha256()
    with object_store.open_read("blob.bin") as stream:
        while chunk := stream.read(64 * 1024):
            assert len(chunk) <= 64 * 1024
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_writer_publishes_only_on_clean_exit(object_store: ObjectStore) -> None:
    with object_store.writer("archive.tar") as out:
        out.write(b"part one")
        assert not object_store.exists("archive.tar")
    assert object_store.get_bytes("archive.tar") == b"part one"


def write_then_fail(store: ObjectStore, key: str, error: Exception) -> None:
    """Start writing ``key``, then fail inside the writer block, as a crashing producer would."""
    with store.writer(key) as out:
        out.write(b"half a file")
        raise error


def test_writer_publishes_nothing_on_exception(object_store: ObjectStore) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail(object_store, "new.jsonl", RuntimeError("boom"))
    assert not object_store.exists("new.jsonl")
    assert list(object_store.list()) == []


def test_caller_may_close_the_writer_early(object_store: ObjectStore) -> None:
    # io.TextIOWrapper closes the file it wraps; that must not lose the data.
    with object_store.writer("text.jsonl") as out, io.TextIOWrapper(out, encoding="utf-8") as text:
        text.write('{"é": 1}\n')
    assert object_store.get_bytes("text.jsonl") == '{"é": 1}\n'.encode()


def test_failed_rewrite_keeps_the_old_object(object_store: ObjectStore) -> None:
    object_store.put_bytes("state.json", b"old")
    with pytest.raises(KeyError):
        write_then_fail(object_store, "state.json", KeyError("interrupted"))
    assert object_store.get_bytes("state.json") == b"old"


def test_list_filters_by_string_prefix_in_key_order(object_store: ObjectStore) -> None:
    for key in ["b/2", "a/1", "a/10/x", "ab", "a/1z", "c"]:
        object_store.put_bytes(key, key.encode())
    assert [info.key for info in object_store.list()] == ["a/1", "a/10/x", "a/1z", "ab", "b/2", "c"]
    assert [info.key for info in object_store.list("a/1")] == ["a/1", "a/10/x", "a/1z"]
    assert [info.key for info in object_store.list("a/")] == ["a/1", "a/10/x", "a/1z"]
    assert [info.key for info in object_store.list("a")] == ["a/1", "a/10/x", "a/1z", "ab"]
    assert list(object_store.list("zzz/")) == []
    assert list(object_store.list("a/10/x")) == [ObjectInfo("a/10/x", 6)]


def test_delete_is_idempotent(object_store: ObjectStore) -> None:
    object_store.put_bytes("d/x", b"1")
    object_store.delete("d/x")
    object_store.delete("d/x")
    assert not object_store.exists("d/x")
    assert list(object_store.list("d/")) == []


def test_missing_object_error_names_the_uri(object_store: ObjectStore) -> None:
    uri = object_store.uri("nope/missing.jsonl")
    with pytest.raises(StorageError, match="no object at") as info:
        object_store.get_bytes("nope/missing.jsonl")
    assert uri in str(info.value)
    with pytest.raises(StorageError, match="no object at"):
        object_store.open_read("nope/missing.jsonl")


BAD_KEYS = ["", "/abs", "a/../b", "..", "a/./b", "a//b", "dir/", "a\\b", "nul\x00", "x" * 1025]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused_everywhere(object_store: ObjectStore, key: str) -> None:
    with pytest.raises(StorageError, match="invalid object key"):
        object_store.put_bytes(key, b"x")
    with pytest.raises(StorageError, match="invalid object key"):
        object_store.writer(key).__enter__()
    for call in (object_store.get_bytes, object_store.open_read, object_store.exists, object_store.delete):
        with pytest.raises(StorageError, match="invalid object key"):
            call(key)
    assert list(object_store.list()) == []


@pytest.mark.parametrize("prefix", ["/a", "../", "a/../b/"])
def test_invalid_list_prefixes_are_refused_before_iterating(object_store: ObjectStore, prefix: str) -> None:
    with pytest.raises(StorageError, match="invalid key prefix"):
        object_store.list(prefix)


def test_unicode_keys(object_store: ObjectStore) -> None:
    object_store.put_bytes("données/été 2026.json", b"{}")
    assert [info.key for info in object_store.list()] == ["données/été 2026.json"]
    assert object_store.get_bytes("données/été 2026.json") == b"{}"
