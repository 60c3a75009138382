"""The current-lineup example config end to end (SQLite and PostgreSQL, local folder and S3), on the emulator.

Asserts what we SEND (the archived manifests: thinking, effort, structured format) and what we BOOK (the
ledger against the emulator's own billing), so it holds whatever the emulator does with the new params.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Batch, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.pricing import Usage, price_usage
from nightbatch.report.summary import summarize
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types
from tests.pipeline.conftest import EXAMPLES, enqueue_examples


def test_the_current_lineup_example_end_to_end(services: Services, emulator: EmulatorServer) -> None:
    services.registry = load_task_types(EXAMPLES / "nightbatch.toml")
    assert services.registry.warnings == []
    enqueue_examples(services.engine, per_type=6)
    report = submit_step(services)
    assert report.submitted_tasks == 24

    sent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in services.store.list("manifests/"):
        for line in services.store.get_bytes(obj.key).splitlines():
            params = json.loads(line)["params"]
            sent[params["model"]].append(params)
    assert set(sent) == {"claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5"}
    haiku = sent["claude-haiku-5-5"]
    assert all(p["thinking"] == {"type": "disabled"} for p in haiku)
    formats = [p["output_config"]["format"] for p in haiku if "output_config" in p]
    assert len(formats) == 6  # the extraction requests, with their schema
    assert all(f["type"] == "json_schema" and f["schema"]["required"] == ["date"] for f in formats)
    assert all(p["thinking"] == {"type": "disabled"} and p["output_config"] == {"effort": "medium"}
               for p in sent["claude-sonnet-5-5"])  # fmt: skip
    assert all(p["thinking"] == {"type": "adaptive"} for p in sent["claude-opus-5-5"])

    emulator.advance(3600)
    collect_step(services)
    with Session(services.engine) as session:
        rows = [r for (r,) in session.exec(select(UsageRecord))]  # type: ignore[call-overload]
        ended = {b.id: b.ended_at for (b,) in session.exec(select(Batch).where(col(Batch.purpose) == "task"))}  # type: ignore[call-overload]
    assert len(rows) == len(emulator.ledger)
    assert all(r.cost_pusd is not None and r.billed_at == ended[r.batch_id] for r in rows)
    theirs = 0
    day = next(iter(ended.values())).date()
    for entry in emulator.ledger.entries():
        usage = Usage(input_tokens=entry.input_tokens, output_tokens=entry.output_tokens,
                      cache_write_5m_tokens=entry.ephemeral_5m_input_tokens,
                      cache_write_1h_tokens=entry.ephemeral_1h_input_tokens,
                      cache_read_tokens=entry.cache_read_input_tokens)  # fmt: skip
        theirs += price_usage(services.prices, entry.model, usage, "batch", day).total_pusd
    assert sum(r.cost_pusd or 0 for r in rows) == theirs
    assert sum(r.thinking_tokens for r in rows) <= sum(r.output_tokens for r in rows)
    summary = summarize(services.engine, services.prices, registry=services.registry)
    assert summary.savings.baseline_model == "claude-opus-5-5"
    assert summary.unpriced == {}
