"""What only the local-folder store does: file layout, its temporary folder, OS errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nightbatch.errors import StorageError
from nightbatch.storage import LocalObjectStore, open_store
from nightbatch.storage.local import TMP_DIR_NAME


def test_keys_are_files_under_the_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "out")
    uri = store.put_bytes("runs/r1/a.json", b"{}")
    assert (tmp_path / "out" / "runs" / "r1" / "a.json").read_bytes() == b"{}"
    assert uri == (tmp_path / "out" / "runs" / "r1" / "a.json").as_uri()
    assert store.root_uri == (tmp_path / "out").as_uri()


def test_root_is_created_and_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("relative/output")
    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "relative" / "output"
    assert store.root.is_dir()


def test_file_uri_location(tmp_path: Path) -> None:
    store = open_store((tmp_path / "with space").as_uri())
    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "with space"


def test_writes_in_progress_live_in_the_reserved_folder(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    with store.writer("big/archive.tar") as out:
        out.write(b"data")
        in_progress = list((tmp_path / TMP_DIR_NAME).iterdir())
        assert len(in_progress) == 1
        assert list(store.list()) == []
    assert list((tmp_path / TMP_DIR_NAME).iterdir()) == []
    assert [o.key for o in store.list()] == ["big/archive.tar"]


def write_then_fail(store: LocalObjectStore, key: str, error: Exception) -> None:
    with store.writer(key) as out:
        out.write(b"data")
        raise error


def test_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    with pytest.raises(ValueError, match="bad"):
        write_then_fail(store, "x", ValueError("bad"))
    assert list((tmp_path / TMP_DIR_NAME).iterdir()) == []


def test_reserved_folder_is_not_a_key(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    with pytest.raises(StorageError, match="reserved"):
        store.put_bytes(f"{TMP_DIR_NAME}/x", b"")


def test_root_that_is_a_file_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError, match="file"):
        LocalObjectStore(tmp_path / "file")


def test_os_errors_are_wrapped_with_the_uri(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("a/b", b"1")
    # "a/b" is a file, so "a/b/c" cannot be created under it.
    with pytest.raises(StorageError, match=r"writing file://.*/a/b/c failed"):
        store.put_bytes("a/b/c", b"2")
    with pytest.raises(StorageError, match=r"cannot open file://.*/a"):
        store.open_read("a")  # a folder, not an object
    assert not store.exists("a")


def test_both_stores_lay_out_keys_alike(tmp_path: Path, s3_bucket: str, s3_endpoint_url: str) -> None:
    local = open_store(str(tmp_path / "local"))
    s3 = open_store(f"s3://{s3_bucket}/p", endpoint_url=s3_endpoint_url)
    keys = ["runs/2026-11-03/batch_01/requests.jsonl", "runs/2026-11-03/summary.json", "index.json"]
    for store in (local, s3):
        for key in keys:
            store.put_bytes(key, key.encode())
    assert list(local.list()) == list(s3.list())
    assert local.uri(keys[0]).endswith(f"/local/{keys[0]}")
    assert s3.uri(keys[0]) == f"s3://{s3_bucket}/p/{keys[0]}"
