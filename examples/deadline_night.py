"""A night where a slow batch was rescued: the README's deadline figures, measured against the emulator.

Three ordinary nights build the duration history. On the fourth the provider's queue sits on the
reply_drafting batch (Sonnet 5.5) after its first 40 requests; the replies are due at 07:00 and the type says
``on_deadline = "realtime"``. At 06:30 (the 30-minute margin) the deadline step cancels the batch: the 40
finished replies are kept and billed at batch prices, the other 60 are sent real-time at standard prices,
billed apart (purpose ``fallback``). Everything runs in simulated time (the emulator's clock, frozen and
advanced by the script), so the night takes seconds and the figures are the same on every run.

    .venv/bin/python examples/deadline_night.py
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session, col
from sqlmodel import select as sqlmodel_select

from nightbatch.collect.poll import collect_step
from nightbatch.config import Settings
from nightbatch.db.engine import make_engine
from nightbatch.db.migrate import upgrade
from nightbatch.db.models import Task, UsagePurpose, UsageRecord
from nightbatch.deadline.durations import DurationModel, expected_finishes
from nightbatch.deadline.policy import deadline_step
from nightbatch.emulator import EmulatorConfig, run_emulator
from nightbatch.pricing import Usage, load_price_table, price_usage, pusd_to_usd
from nightbatch.queue.enqueue import enqueue
from nightbatch.report.summary import summarize
from nightbatch.runs import start_run
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore
from nightbatch.submit.step import submit_step
from nightbatch.submit.submitter import SubmitOutcome
from nightbatch.tasktypes import TaskTypeRegistry, load_task_types

EXAMPLES = Path(__file__).resolve().parent
START = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
PER_NIGHT = {"ticket_triage": 300, "reply_drafting": 100}
RESCUED = "reply_drafting"
FINISHED_BEFORE_STALL = 40


def payloads(task_type: str, night: int) -> list[tuple[dict[str, object], str]]:
    count = PER_NIGHT[task_type]
    with (EXAMPLES / "tasks" / f"{task_type}.jsonl").open() as lines:
        rows = [json.loads(line) for line in itertools.islice(lines, count * night, count * (night + 1))]
    return [(r["payload"], r["key"]) for r in rows]


def main() -> None:
    registry = load_task_types(EXAMPLES / "nightbatch.toml")
    registry = TaskTypeRegistry(
        [t.model_copy(update={"on_deadline": "realtime"}) if t.name == RESCUED else t for t in registry]
    )
    config = EmulatorConfig(time_scale=0, start_time=START, seed=7)
    with tempfile.TemporaryDirectory() as tmp, run_emulator(config) as emulator:
        url = f"sqlite:///{Path(tmp) / 'night.db'}"
        upgrade(url)
        services = Services(
            settings=Settings(anthropic_api_key=None, database_url=url),
            engine=make_engine(url),
            store=LocalObjectStore(Path(tmp) / "out"),
            registry=registry,
            prices=load_price_table(),
            worker="night-worker",
            base_url=emulator.base_url,
        )

        def now() -> datetime:
            return datetime.fromtimestamp(emulator.clock.now(), UTC)

        for night in range(4):
            run_id = start_run(services.engine, "nightly", {"night": night})
            deadline = (now() + timedelta(hours=9)).replace(minute=0, second=0, microsecond=0)  # 07:00
            for task_type in PER_NIGHT:
                for payload, key in payloads(task_type, night):
                    enqueue(services.engine, task_type, payload, key=key, deadline=deadline)
            # Ordinary nights: the queue takes 1-3 hours (the emulator's slow-model knob).
            emulator.configure(
                model_batch_delay_seconds={"claude-sonnet-5-5": (3600, 10800), "claude-haiku-5-5": (600, 3600)}
            )
            margin = timedelta(minutes=services.settings.deadline_margin_minutes)
            stalled: int | None = None
            shown = False
            while now() < deadline:
                if now() < deadline - margin:
                    # As the nightly flow does: submit what is queued (a cache pilot's fan-out once it ended).
                    for outcome in submit_step(services, run_id=run_id, deadline=deadline).batches:
                        if night == 3 and stalled is None and _is_reply_batch(services, outcome):
                            assert outcome.provider_batch_id is not None
                            emulator.stall_batch(outcome.provider_batch_id, after_requests=FINISHED_BEFORE_STALL)
                            stalled = outcome.batch_id
                emulator.advance(300)  # the flow polls every minute or so; 5 minutes is enough here
                collect_step(services)
                report = deadline_step(services, now=now(), run_id=run_id, run_deadline=deadline)
                if night != 3:
                    continue
                if stalled is not None and not shown and now() >= deadline - timedelta(hours=8):
                    shown = True
                    print(f"night {night + 1}, {now():%H:%M}: in flight")
                    for e in expected_finishes(services.engine, now(), run_id=run_id):
                        assert e.p50_at is not None
                        assert e.p95_at is not None
                        assert e.spread is not None
                        print(
                            f"  batch {e.batch.id} ({e.batch.model}, {e.batch.requests} requests, sent "
                            f"{e.batch.submitted_at:%H:%M}): expected by {e.p50_at:%H:%M} (p50), "
                            f"{e.p95_at:%H:%M} (p95), from {e.spread.samples} batches"
                        )
                if stalled is not None and now() == deadline - timedelta(hours=5):
                    for e in expected_finishes(services.engine, now(), run_id=run_id):
                        print(f"  {now():%H:%M} {e.describe()}")
                for line in report.notes():  # the task ids are listed in full in the run summary
                    print(f"  {now():%H:%M} {line if len(line) < 100 else line[:96] + ' ...'}")
            summary = summarize(services.engine, services.prices, run_id=run_id)
            print(
                f"night {night + 1}: outcomes {summary.outcomes}, cost ${summary.cost_usd:.4f}, "
                f"fallback ${pusd_to_usd(summary.fallback_pusd):.4f} for {len(summary.fallback_tasks)} tasks"
            )
            emulator.advance(15 * 3600)  # to the next evening
        _figures(services, run_id)
        with Session(services.engine) as session:
            ours = list(session.exec(sqlmodel_select(UsageRecord)).all())
        billed = emulator.ledger.entries()
        own = (UsagePurpose.TASK, UsagePurpose.FALLBACK)
        per_task = Counter(r.task_id for r in ours if r.task_id is not None and r.purpose in own)
        print(
            f"provider billed {len(billed)} responses, our ledger has {len(ours)} rows; "
            f"most bills for one task: {max(per_task.values())}"
        )
        print("measured batch durations (model, size, batches, p50 h, p95 h):")
        for model, bucket, n, p50, p95 in DurationModel.load(services.engine).groups():
            print(f"  {model:<18} {bucket:<8} {n:>3} {p50 / 3600:5.1f} {p95 / 3600:5.1f}")


def _is_reply_batch(services: Services, outcome: SubmitOutcome) -> bool:
    """Whether a submitted batch carries at least 50 reply_drafting tasks (the fan-out, not a pilot or shadows)."""
    with services.engine.connect() as conn:
        types = conn.execute(select(col(Task.task_type)).where(col(Task.id).in_(outcome.task_ids))).scalars().all()
    return sum(t == RESCUED for t in types) >= 50


def _figures(services: Services, run_id: int) -> None:
    """The last night's bill, split: batch, fallback, and what the fallback's usage would have cost in a batch."""
    with Session(services.engine) as session:
        rows = list(session.exec(sqlmodel_select(UsageRecord).where(col(UsageRecord.run_id) == run_id)).all())
    batch = sum(r.cost_pusd or 0 for r in rows if r.purpose == UsagePurpose.TASK)
    by_kind: dict[str, int] = {}
    for r in rows:
        kind = f"{r.purpose}/{r.service_tier}"
        by_kind[kind] = by_kind.get(kind, 0) + (r.cost_pusd or 0)
    print("night 4 by purpose/tier: " + ", ".join(f"{k} ${pusd_to_usd(v):.4f}" for k, v in sorted(by_kind.items())))
    fallback = [r for r in rows if r.purpose == UsagePurpose.FALLBACK]
    standard = sum(r.cost_pusd or 0 for r in fallback)
    as_batch = sum(
        price_usage(
            services.prices,
            r.model,
            Usage(
                r.input_tokens, r.output_tokens, r.cache_write_5m_tokens, r.cache_write_1h_tokens, r.cache_read_tokens
            ),
            "batch",
        ).total_pusd
        for r in fallback
    )
    print(
        f"night 4 bill: batch tasks ${pusd_to_usd(batch):.4f}; real-time fallback ${pusd_to_usd(standard):.4f} "
        f"for {len(fallback)} tasks"
    )
    print(
        f"  the same usage in a batch: ${pusd_to_usd(as_batch):.4f}; missing the window cost "
        f"${pusd_to_usd(standard - as_batch):.4f}"
    )


if __name__ == "__main__":
    main()
