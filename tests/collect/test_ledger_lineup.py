"""The ledger on the current lineup, end to end through ingest (SQLite and PostgreSQL), costs worked by hand.

A batch of the example workload runs on the emulator; its downloaded result lines are then rewritten to
what a 5.5-era result carries (a model, a usage with thinking, a geo, a billing day) and ingested. So these
hold whatever the emulator itself answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from nightbatch.collect.ingest import IngestReport, ingest_batch, results_key
from nightbatch.collect.poll import collect_step, open_batches
from nightbatch.db.models import Batch, Task, TaskStatus, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from tests.pipeline.conftest import enqueue_examples

Line = dict[str, Any]


def ingest_rewritten(
    services: Services, emulator: EmulatorServer, rewrite: Callable[[Line], None], ended_at: datetime
) -> tuple[IngestReport, list[UsageRecord]]:
    """Run 2 triage tasks as a batch, rewrite every succeeded line, set the batch's end, ingest it."""
    enqueue_examples(services.engine, per_type=2)
    submit_step(services, task_types=["ticket_triage"])
    emulator.advance(3600)
    ((batch_id, provider_id),) = open_batches(services)
    emulator.faults.fail("batch_results", "api_error", times=3, retry_after=0.01)  # poll only, no download
    collect_step(services)
    emulator.faults.clear()
    with services.client.result_lines(provider_id) as stream:
        lines = [json.loads(line) for line in stream]
    for line in lines:
        if line["result"]["type"] == "succeeded":
            rewrite(line)
    key = results_key(batch_id, ended_at.date())
    services.store.put_bytes(key, b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    with services.engine.begin() as conn:
        conn.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id)
            .values(results_uri=services.store.uri(key), ended_at=ended_at)
        )
    report = ingest_batch(services, batch_id)
    with services.engine.connect() as conn:
        rows = list(conn.execute(select(UsageRecord).where(col(UsageRecord.batch_id) == batch_id)))
    assert len(rows) == 2
    return report, [UsageRecord.model_validate(r._mapping) for r in rows]


def with_model(
    model: str, usage: dict[str, Any], content: list[dict[str, Any]] | None = None
) -> Callable[[Line], None]:
    def rewrite(line: Line) -> None:
        message = line["result"]["message"]
        message["model"] = model
        message["usage"] = dict(usage)
        if content is not None:
            message["content"] = content

    return rewrite


OCT_6 = datetime(2026, 10, 6, 23, 0, tzinfo=UTC)
OCT_8 = datetime(2026, 10, 8, 1, 0, tzinfo=UTC)


def test_sonnet_5_5_reads_billed_before_the_cut(services: Services, emulator: EmulatorServer) -> None:
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 1_000_000}
    _, rows = ingest_rewritten(services, emulator, with_model("claude-sonnet-5-5", usage), OCT_6)
    # $0.20/MTok x 0.5 (batch) = 100,000 pUSD per token x 1,000,000
    assert [r.cost_pusd for r in rows] == [100_000_000_000] * 2
    assert all(r.billed_at == OCT_6 for r in rows)


def test_sonnet_5_5_reads_billed_after_the_cut(services: Services, emulator: EmulatorServer) -> None:
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 1_000_000}
    _, rows = ingest_rewritten(services, emulator, with_model("claude-sonnet-5-5", usage), OCT_8)
    assert [r.cost_pusd for r in rows] == [50_000_000_000] * 2  # $0.10/MTok x 0.5


def test_haiku_5_5_band_us_geo_and_thinking_in_the_ledger(services: Services, emulator: EmulatorServer) -> None:
    usage = {
        "input_tokens": 100_001, "output_tokens": 1_000, "inference_geo": "us",
        "output_tokens_details": {"thinking_tokens": 900},
    }  # fmt: skip
    content = [{"type": "thinking", "thinking": "x" * 40, "signature": "s"}, {"type": "text", "text": "billing"}]
    _, rows = ingest_rewritten(services, emulator, with_model("claude-haiku-5-5", usage, content), OCT_8)
    # Band prices x 1.1 x 0.5: input 275,000 and output 1,375,000 pUSD per token, on every token.
    expected = 100_001 * 275_000 + 1_000 * 1_375_000
    for row in rows:
        assert row.cost_pusd == expected
        assert row.inference_geo == "us"
        assert row.thinking_tokens == 900  # the API's own split wins over counting the blocks
        assert row.output_tokens == 1_000  # thinking stays inside output: billed as output


def test_thinking_counted_from_the_blocks_when_the_usage_has_no_split(
    services: Services, emulator: EmulatorServer
) -> None:
    usage = {"input_tokens": 10, "output_tokens": 60}
    content = [{"type": "thinking", "thinking": "t" * 200, "signature": "s"}, {"type": "text", "text": "billing"}]
    _, rows = ingest_rewritten(services, emulator, with_model("claude-haiku-5-5", usage, content), OCT_8)
    # 200 bytes at ~4 per token = 50 thinking tokens of the 60 output tokens
    assert [r.thinking_tokens for r in rows] == [50, 50]
    assert [r.cost_pusd for r in rows] == [10 * 50_000 + 60 * 250_000] * 2


def test_a_dated_id_is_priced_and_booked_as_its_entry(services: Services, emulator: EmulatorServer) -> None:
    usage = {"input_tokens": 1_000, "output_tokens": 10}
    _, rows = ingest_rewritten(services, emulator, with_model("claude-haiku-4-5-20251001", usage), OCT_8)
    assert {r.model for r in rows} == {"claude-haiku-4-5"}
    assert [r.cost_pusd for r in rows] == [1_000 * 500_000 + 10 * 2_500_000] * 2


def test_a_result_for_a_model_without_a_price_is_booked_unpriced_never_free(
    services: Services, emulator: EmulatorServer
) -> None:
    usage = {"input_tokens": 1_000, "output_tokens": 10}
    report, rows = ingest_rewritten(services, emulator, with_model("claude-unpriced-9", usage), OCT_8)
    assert report.unpriced == {"claude-unpriced-9": 2}
    assert report.bad_lines == []
    for row in rows:
        assert row.cost_pusd is None  # NULL, not 0
        assert (row.model, row.input_tokens, row.output_tokens) == ("claude-unpriced-9", 1_000, 10)
    with services.engine.connect() as conn:
        statuses = conn.execute(select(col(Task.status)).where(col(Task.id).in_([r.task_id for r in rows]))).scalars()
        assert set(statuses) == {TaskStatus.SUCCEEDED}  # the work was done and billed: the task is not retried


def test_a_model_billed_before_its_first_price_row_is_unpriced(services: Services, emulator: EmulatorServer) -> None:
    usage = {"input_tokens": 1_000, "output_tokens": 10}  # Fable 5.2's only row starts 2026-11-09
    report, rows = ingest_rewritten(services, emulator, with_model("claude-fable-5-2", usage), OCT_8)
    assert report.unpriced == {"claude-fable-5-2": 2}
    assert [r.cost_pusd for r in rows] == [None, None]
