"""`.part` files left by a writer killed mid-write are removed on the next start (issue 15, item 8).

The writers are real child processes SIGKILLed inside the store's writer: one on a local output folder
(its temp dir), one on S3 (the spool in the system temp dir).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from nightbatch.config import Settings
from nightbatch.services import Services
from nightbatch.storage import open_store
from nightbatch.storage.leftovers import clean_parts, part_tag
from nightbatch.storage.local import TMP_DIR_NAME

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from nightbatch.storage import open_store

    store = open_store(sys.argv[1], endpoint_url=sys.argv[2] or None)
    with store.writer("outputs/shard-1.jsonl") as out:
        out.write(b"half a result line")
        out.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _kill_mid_write(location: str, endpoint: str, env: dict[str, str]) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, location, endpoint], env=env, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL, child.stderr


def test_local_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str):
    out = tmp_path / "out"
    _kill_mid_write(str(out), "", dict(os.environ))
    left = list((out / TMP_DIR_NAME).glob("*.part"))
    assert len(left) == 1
    # A live writer's file (this process) is kept.
    live = out / TMP_DIR_NAME / f"x.{part_tag()}abc.part"
    live.write_bytes(b"in progress")
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(out))
    Services.from_settings(Settings()).close()  # the next start
    assert list((out / TMP_DIR_NAME).glob("*.part")) == [live]


def test_s3_spool_in_the_system_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_env: dict[str, str], s3_bucket: str, s3_endpoint_url: str
):
    spool = tmp_path / "tmp"
    spool.mkdir()
    _kill_mid_write(f"s3://{s3_bucket}/prefix", s3_endpoint_url, {**os.environ, **s3_env, "TMPDIR": str(spool)})
    assert len(list(spool.glob("nightbatch-s3-*.part"))) == 1
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    store = open_store(f"s3://{s3_bucket}/prefix", endpoint_url=s3_endpoint_url)
    assert store.clean_leftovers() == 1
    assert list(spool.glob("*.part")) == []


def test_old_untagged_leftovers_go_too(tmp_path: Path):
    old = tmp_path / "a.jsonl.k3j4.part"
    old.write_bytes(b"x")
    recent = tmp_path / "b.jsonl.k3j5.part"
    recent.write_bytes(b"x")
    past = time.time() - 2 * 24 * 3600
    os.utime(old, (past, past))
    assert clean_parts(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [recent.name]
