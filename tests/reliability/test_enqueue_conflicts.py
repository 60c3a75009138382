"""The same idempotency key for a different task is reported, and replaced only when asked (item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from nightbatch.cli import app
from nightbatch.db.models import Task
from nightbatch.queue.claim import claim


def _enqueue(path: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["enqueue", str(path), *extra])
    return result.exit_code, " ".join(result.output.split())


def _write(path: Path, texts: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"key": k, "payload": {"text": t}}) + "\n" for k, t in texts.items()))
    return path


def _payloads(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {k: p["text"] for k, p in conn.execute(select(Task.idempotency_key, Task.payload))}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path) -> None:
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(Path(__file__).resolve().parents[2] / "examples/nightbatch.toml"))


@pytest.mark.usefixtures("cli_env")
def test_conflicting_keys_are_reported_and_replaced_on_request(engine: Engine, tmp_path: Path):
    first = _write(tmp_path / "date_extraction.jsonl", {"k1": "paid 2024-01-01", "k2": "paid 2024-01-02", "k3": "x"})
    assert _enqueue(first)[0] == 0
    [held] = claim(engine, 1, "someone", task_types=["date_extraction"])  # k1 is in a worker's hands
    assert held.idempotency_key == "k1"

    fixed = _write(tmp_path / "date_extraction.jsonl", {"k1": "paid 2025-01-01", "k2": "paid 2025-01-02", "k3": "x"})
    code, output = _enqueue(fixed)
    assert code == 0, output
    assert "enqueued 0 tasks" in output
    assert "(1 already queued)" in output  # k3: the same task again, a plain re-run
    assert "2 key(s) already used by a different task: k1, k2" in output
    assert "--replace" in output
    assert _payloads(engine) == {"k1": "paid 2024-01-01", "k2": "paid 2024-01-02", "k3": "x"}

    code, output = _enqueue(fixed, "--replace")
    assert code == 0, output
    assert "1 queued one(s) replaced" in output
    assert "the others left as they were" in output  # k1 is claimed: never rewritten under a worker
    assert _payloads(engine) == {"k1": "paid 2024-01-01", "k2": "paid 2025-01-02", "k3": "x"}
    code, output = _enqueue(fixed, "--replace")  # idempotent: k2 now matches, k1 still held
    assert "1 key(s) already used by a different task: k1" in output
