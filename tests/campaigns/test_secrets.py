"""Secrets: a whole nightly flow run leaves the API key and the AWS secret nowhere.

The run is configured as a deployed worker is, from the environment: a recognisable fake
``ANTHROPIC_API_KEY`` (the emulator accepts only that key, so the run really used it), the output on
moto's S3 with a recognisable fake AWS secret. Then every place the run could have written to is
searched for either secret, and for a distinctive piece of each (a leak may be cut short):

* every column of every row of every table of our database;
* every object written to the bucket;
* every log record (pytest's ``caplog``, at DEBUG) and everything printed (``capsys``);
* everything Prefect keeps: flow-run parameters, names and state messages, task-run names and states,
  logs and artifacts read back with the Prefect client, and the bytes of the Prefect server's own
  database file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, select

from flows.nightly import nightly
from flows.params import NightlyParams
from nightbatch.db import metadata
from nightbatch.emulator import EmulatorServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _database(engine: Engine) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                found += [(f"table {table.name}.{key}", _text(value)) for key, value in row._mapping.items()]
    return found


def _bucket(client: S3Client, bucket: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found.append((f"object s3://{bucket}/{item['Key']}", _text(body)))
    return found


async def _prefect() -> list[tuple[str, str]]:
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    found: list[tuple[str, str]] = []
    async with get_client() as client:
        for run in await client.read_flow_runs(limit=200):
            state = run.state.message if run.state else None
            found.append((f"flow run {run.name}", _text([run.name, run.parameters, run.tags, state])))
        for task_run in await client.read_task_runs(limit=200):
            state = task_run.state.message if task_run.state else None
            found.append((f"task run {task_run.name}", _text([task_run.name, task_run.tags, state])))
        offset = 0
        while logs := await client.read_logs(limit=200, offset=offset):
            found += [(f"Prefect log of {log.flow_run_id}", log.message) for log in logs]
            offset += len(logs)
        for artifact in await client.read_artifacts(limit=200):
            found.append((f"artifact {artifact.key}", _text([artifact.data, artifact.description])))
    return found


def _prefect_database() -> list[tuple[str, str]]:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    path = Path(str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).split(":///", 1)[-1])
    files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]
    assert files, f"the Prefect server's database is not at {path}"
    return [(f"Prefect database file {p.name}", p.read_bytes().decode("latin-1")) for p in files]


@pytest.mark.usefixtures("prefect_harness")
def test_a_nightly_run_leaves_no_secret_anywhere(
    monkeypatch: pytest.MonkeyPatch,
    engine: Engine,
    db_url: str,
    emulator: EmulatorServer,
    s3_bucket: str,
    s3_endpoint_url: str,
    s3_client: S3Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
):
    api_key = f"sk-ant-api03-CANARY{secrets.token_urlsafe(24)}"
    aws_secret = f"CANARYawsSecret{secrets.token_hex(12)}"
    needles = {
        "the API key": api_key,
        "the API key's random part": api_key[19:35],
        "the AWS secret": aws_secret,
        "the AWS secret's random part": aws_secret[15:31],
    }
    for name in ("NIGHTBATCH_ANTHROPIC_API_KEY", "NIGHTBATCH_ANTHROPIC_BASE_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "ANTHROPIC_API_KEY": api_key,
        "ANTHROPIC_BASE_URL": emulator.base_url,
        "AWS_ACCESS_KEY_ID": "AKIACANARYNIGHTBATCH",
        "AWS_SECRET_ACCESS_KEY": aws_secret,
        "NIGHTBATCH_DATABASE_URL": db_url,
        "NIGHTBATCH_OUTPUT": f"s3://{s3_bucket}/nightly",
        "NIGHTBATCH_S3_ENDPOINT_URL": s3_endpoint_url,
        "NIGHTBATCH_TASK_CONFIG": str(EXAMPLES / "nightbatch.toml"),
    }.items():
        monkeypatch.setenv(name, value)
    emulator.configure(time_scale=36_000, api_keys=[api_key])  # the run works only with this key
    source = tmp_path / "tasks"
    source.mkdir()
    for name in ("ticket_triage", "date_extraction"):
        lines = (EXAMPLES / "tasks" / f"{name}.jsonl").read_text().splitlines()[:10]
        (source / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    (source / "broken.jsonl").write_text('{"text": "no task type"}\n')  # refused: an error path, logged too
    caplog.set_level(logging.DEBUG)

    # The refused file makes the night Failed (the outcome policy); its data still carries the run's totals.
    state = nightly(
        NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=2, wait=True), return_state=True
    )
    assert state.is_failed()
    result = state.result(raise_on_failure=False).totals

    assert result["outcomes"] == {"succeeded": 20}
    printed = capsys.readouterr()
    places = _database(engine) + _bucket(s3_client, s3_bucket)
    places += [(f"log {r.name}", r.getMessage() + (r.exc_text or "")) for r in caplog.records]
    places += [("stdout", printed.out), ("stderr", printed.err)]
    places += asyncio.run(_prefect()) + _prefect_database()

    def seen(text: str, kind: str) -> bool:
        return any(text in content for where, content in places if where.startswith(kind))

    # The search must be able to see: each kind of place holds what the run surely put there.
    assert seen("succeeded", "table task.status"), "the task table was not read"
    assert seen('"task_id"', "object s3://"), "the run wrote no output shard to the bucket"
    assert seen("broken.jsonl:1: ", "log "), "the refused file is not in the captured logs"
    assert seen("broken.jsonl:1: ", "Prefect log"), "the refused file is not in the Prefect logs"
    assert seen(str(source), "flow run"), "the flow run's parameters were not read back"
    assert seen(str(source), "Prefect database"), "the Prefect database file was not read"
    leaks = [f"{what} in {where}" for where, content in places for what, needle in needles.items() if needle in content]
    print(
        f"\nsecrets: searched {len(places)} places (rows x columns, objects, logs, Prefect records): {len(leaks)} leaks"
    )
    assert not leaks
