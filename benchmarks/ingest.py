"""Ingest: the results of one ended batch -> object store (archive + shards) + database (tasks, ledger).

The emulator (in a process of its own) holds two ended batches, of ``small`` and ``large`` requests, whose
replies run to a few hundred output tokens (1.5–2 KB a result line). Each case seeds a fresh database with
the batch's tasks in ``submitted`` and times :func:`nightbatch.collect.ingest.ingest_batch` end to end:
download, archive, shards, one transaction of bulk updates and inserts.

The baseline is the straightforward loop: iterate the SDK's ``client.messages.batches.results(id)``, and
per result one ORM query and update of the task, one usage row, one attempt row and one object put
(the output as its own object), committing every 100. It runs on a smaller batch (2,000 results) and its
rate is applied to both sizes: it does not get faster with more results.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    API_KEY,
    EXAMPLES,
    EmulatorProcess,
    Row,
    measure,
    postgres_server_url,
    run_child,
    scratch_database,
    scratch_folder,
)

MODEL = "claude-sonnet-4-6"
TASK_TYPE = "reply_drafting"
SYSTEM = "You draft friendly, concise support replies for Pylonworks. Use the tools when an order is involved."


def _params(i: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 400,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": f"Draft the reply to customer {i} about order PW-{i * 7:07d}."}],
    }


def _custom_id(i: int) -> str:
    return f"t{i}-1"


def _services(url: str, store_location: str, base_url: str, s3_endpoint: str | None = None) -> Any:
    from nightbatch.config import Settings
    from nightbatch.db import make_engine
    from nightbatch.pricing import load_price_table
    from nightbatch.services import Services
    from nightbatch.storage import open_store
    from nightbatch.tasktypes import load_task_types

    return Services(
        settings=Settings(anthropic_api_key=None, max_attempts=3, lease_seconds=60),
        engine=make_engine(url),
        store=open_store(store_location, endpoint_url=s3_endpoint),
        registry=load_task_types(EXAMPLES / "nightbatch-4x.toml"),  # the routes docs/benchmarks.md measured
        prices=load_price_table(),
        worker="bench",
        base_url=base_url,
    )


def _seed(engine: Any, n: int, provider_batch_id: str) -> int:
    """The batch row (ended) and its ``n`` tasks (submitted), as the submit step leaves them."""
    from sqlalchemy import insert

    from nightbatch.db import Batch, BatchStatus, Task, TaskStatus

    now = datetime.now(UTC)
    with engine.begin() as conn:
        batch_id = conn.execute(
            insert(Batch).values(
                model=MODEL,
                status=BatchStatus.ENDED,
                provider_batch_id=provider_batch_id,
                request_count=n,
                succeeded_count=n,
                created_at=now,
                submitted_at=now,
                ended_at=now,
                expires_at=now + timedelta(days=1),
                purpose="task",
            )
        ).inserted_primary_key[0]
        for start in range(1, n + 1, 10_000):
            conn.execute(
                insert(Task),
                [
                    {
                        "task_type": TASK_TYPE,
                        "payload": {"customer": f"customer {i}", "order": f"PW-{i * 7:07d}"},
                        "idempotency_key": f"bench-{i}",
                        "status": TaskStatus.SUBMITTED,
                        "attempts": 1,
                        "model": MODEL,
                        "batch_id": batch_id,
                        "custom_id": _custom_id(i),
                        "priority": 0,
                        "user_canceled": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(n, start + 9_999) + 1)
                ],
            )
    return int(batch_id)


def _counts(engine: Any, batch_id: int) -> tuple[int, int]:
    from sqlalchemy import text

    with engine.connect() as conn:
        done = conn.execute(
            text("SELECT count(*) FROM task WHERE batch_id = :b AND status = 'succeeded'"), {"b": batch_id}
        ).scalar_one()
        billed = conn.execute(
            text("SELECT count(*) FROM usage_record WHERE batch_id = :b"), {"b": batch_id}
        ).scalar_one()
    return int(done), int(billed)


def _store_location(folder: Path, s3_endpoint: str | None) -> str:
    return f"s3://{_BUCKET}/nightbatch" if s3_endpoint else str(folder / "store")


_BUCKET = "nightbatch-bench"


def case_nightbatch(
    backend: str, postgres_url: str | None, n: int, provider_batch_id: str, base_url: str, s3_endpoint: str | None
) -> dict[str, Any]:
    """``ingest_batch`` on a batch of ``n`` results (child process)."""
    from nightbatch.collect.ingest import ingest_batch

    with scratch_folder() as folder, scratch_database(backend, folder, postgres_url) as url:
        services = _services(url, _store_location(folder, s3_endpoint), base_url, s3_endpoint)
        batch_id = _seed(services.engine, n, provider_batch_id)
        services.client  # noqa: B018 - create the SDK client outside the measured section
        with measure() as m:
            report = ingest_batch(services, batch_id)
        done, billed = _counts(services.engine, batch_id)
        services.close()
    if done != n or billed != n or report.outcomes.get("succeeded") != n:
        raise AssertionError(f"ingest left {done}/{n} tasks succeeded and {billed} usage rows: {report.outcomes}")
    return {"n": n, "seconds": m.seconds, "peak_bytes": m.peak_bytes}


def case_baseline(
    backend: str, postgres_url: str | None, n: int, provider_batch_id: str, base_url: str, s3_endpoint: str | None
) -> dict[str, Any]:
    """The naive loop over a batch of ``n`` results (child process)."""
    import anthropic
    from sqlmodel import Session, select

    from nightbatch.db import ServiceTier, Task, TaskAttempt, TaskStatus, UsagePurpose, UsageRecord
    from nightbatch.pricing import Usage, price_usage

    with scratch_folder() as folder, scratch_database(backend, folder, postgres_url) as url:
        services = _services(url, _store_location(folder, s3_endpoint), base_url, s3_endpoint)
        batch_id = _seed(services.engine, n, provider_batch_id)
        sdk = anthropic.Anthropic(api_key=API_KEY, base_url=base_url)
        store, prices = services.store, services.prices
        done = 0
        with measure() as m, Session(services.engine) as session:
            for line in sdk.messages.batches.results(provider_batch_id):
                task = session.exec(
                    select(Task).where(Task.batch_id == batch_id, Task.custom_id == line.custom_id)
                ).one()
                result = line.result
                assert result.type == "succeeded"
                message = result.message
                text = "".join(block.text for block in message.content if block.type == "text")
                usage = Usage.from_api(message.usage)
                cost = price_usage(prices, message.model, usage, "batch").total_pusd
                key = f"outputs/task_type={task.task_type}/task-{task.id}.json"
                record = {"task_id": task.id, "custom_id": line.custom_id, "model": message.model, "output": text}
                uri = store.put_bytes(key, json.dumps(record).encode(), content_type="application/json")
                task.status, task.output_uri, task.updated_at = TaskStatus.SUCCEEDED, uri, datetime.now(UTC)
                session.add(task)
                session.add(
                    UsageRecord(
                        task_id=task.id,
                        batch_id=batch_id,
                        model=message.model,
                        service_tier=ServiceTier.BATCH,
                        input_tokens=usage.input_tokens,
                        output_tokens=usage.output_tokens,
                        cache_read_tokens=usage.cache_read_tokens,
                        price_version=prices.version,
                        cost_pusd=cost,
                        purpose=UsagePurpose.TASK,
                    )
                )
                session.add(
                    TaskAttempt(
                        task_id=task.id or 0,
                        task_type=task.task_type,
                        attempt=task.attempts,
                        model=message.model,
                        batch_id=batch_id,
                        custom_id=line.custom_id,
                        result_type=result.type,
                        check_passed=True,
                        output=text if len(text) <= 512 else None,
                    )
                )
                done += 1
                if done % 100 == 0:
                    session.commit()
            session.commit()
        sdk.close()
        services.close()
    return {"n": done, "seconds": m.seconds, "peak_bytes": m.peak_bytes}


def _rate(result: dict[str, Any]) -> float:
    return float(result["n"]) / float(result["seconds"])


def run(quick: bool = False) -> list[Row]:
    small, large = (2_000, 20_000) if quick else (10_000, 100_000)
    sample = 500 if quick else 2_000
    postgres_url = postgres_server_url()
    backends = ["sqlite"] + (["postgresql"] if postgres_url else [])
    rows: list[Row] = []
    config = {"batch_concurrency": 100_000, "wave_seconds": 1, "reply_min_tokens": 200, "reply_max_tokens": 400}
    with EmulatorProcess(**config) as emulator:
        # The baseline reads a batch of its own to the end: a download dropped halfway would be unfair to the
        # emulator (and to a real API, which sends the whole file either way).
        ids = {n: emulator.create_batch([{"custom_id": _custom_id(i), "params": _params(i)} for i in range(1, n + 1)])
               for n in {small, large, sample, sample // 4}}  # fmt: skip
        emulator.advance(3600)
        for backend in backends:
            common: dict[str, Any] = {"backend": backend, "postgres_url": postgres_url, "base_url": emulator.base_url}
            base = run_child(case_baseline, n=sample, provider_batch_id=ids[sample], s3_endpoint=None, **common)
            for n in (small, large):
                ours = run_child(case_nightbatch, n=n, provider_batch_id=ids[n], s3_endpoint=None, **common)
                note = f"baseline: a batch of {base['n']:,}, rate applied to {n:,}"
                rows.append(
                    Row("ingest", f"{backend}, local folder", n, "results/s", _rate(ours), _rate(base),
                        ours["peak_bytes"], [note, f"{ours['seconds']:.1f} s"])
                )  # fmt: skip
        rows += _s3_rows(emulator, ids, small, sample // 4)
    return rows


def _s3_rows(emulator: EmulatorProcess, ids: dict[int, str], n: int, sample: int) -> list[Row]:
    """One run on S3 over HTTP (moto), SQLite: the store's share of the cost."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket=_BUCKET)
        env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
        common: dict[str, Any] = {"backend": "sqlite", "postgres_url": None, "base_url": emulator.base_url}
        common["s3_endpoint"] = endpoint
        base = run_child(case_baseline, env, n=sample, provider_batch_id=ids[sample], **common)
        ours = run_child(case_nightbatch, env, n=n, provider_batch_id=ids[n], **common)
    finally:
        server.stop()
    note = f"baseline: a batch of {base['n']:,}, rate applied to {n:,}"
    return [Row("ingest", "sqlite, S3 (moto)", n, "results/s", _rate(ours), _rate(base), ours["peak_bytes"],
                [note, f"{ours['seconds']:.1f} s"])]  # fmt: skip
