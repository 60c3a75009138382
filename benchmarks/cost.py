"""Cost: what a workload is billed, against the naive baseline and each lever added in turn.

Two workloads run end to end through the pipeline's own steps (enqueue -> submit -> an hour of provider
time -> collect, in rounds until nothing is queued) against the emulator, in a process of its own, with
the demo's per-tier error rates (so some outputs fail their checks and escalate):

- **example**: ``examples/tasks`` as shipped (3,000 tasks of four types: triage, dates, reply drafts,
  policy judgements);
- **classification backfill**: mostly ticket triage (90%), the rest date extraction: the cheap, highly
  cacheable kind of job a backfill is.

The figures are :func:`nightbatch.report.savings.savings` of the run: the same billed usage re-priced as
(a) naive: all real-time on the top model, no caching; (b) routing only; (c) routing + batching; and
(d) what was billed (routing + batching + caching). Tokens, cache hits and costs are the **emulator's**
usage accounting at the real price table; no real API was called.
"""

from __future__ import annotations

import importlib.util
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import EXAMPLES, EmulatorProcess, run_child, scratch_database, scratch_folder

# The demo's quality error rates per model tier (1 = Haiku): some outputs fail their checks and escalate.
ERROR_RATES = {1: 0.04, 2: 0.02, 3: 0.01}


@dataclass
class CostRow:
    """One workload's cost levels, in dollars, and its cache hit rate."""

    workload: str
    tasks: int
    responses: int
    naive_usd: float
    routed_usd: float
    batched_usd: float
    billed_usd: float
    cache_hit_rate: float | None
    notes: list[str]


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("example_generator", EXAMPLES / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_backfill(folder: Path, tasks: int, seed: int = 11) -> Path:
    """A classification backfill: 90% ticket triage, 10% date extraction, in ``folder/tasks``."""
    generate, rng = _generator(), random.Random(seed)
    out = folder / "tasks"
    out.mkdir(parents=True)
    triage = round(tasks * 0.9)
    with (out / "ticket_triage.jsonl").open("w") as lines:
        for n in range(triage):
            label = rng.choice(generate.LABELS)
            text = f"[{rng.choice(generate.PRODUCTS)}] {rng.choice(generate.ISSUES[label])}. Ticket {n}."
            payload = {"ticket_id": n, "text": text, "expected_label": label}
            lines.write(json.dumps({"key": f"backfill-triage-{n}", "payload": payload}) + "\n")
    with (out / "date_extraction.jsonl").open("w") as lines:
        for n in range(tasks - triage):
            text, iso = generate.date_string(rng)
            payload = {"text": text, "expected_date": iso}
            lines.write(json.dumps({"key": f"backfill-date-{n}", "payload": payload}) + "\n")
    return out


def case_workload(tasks_dir: str, base_url: str) -> dict[str, Any]:
    """Run one workload to the end (child process); returns its summary's cost levels."""
    import httpx2

    from nightbatch.collect.poll import collect_step
    from nightbatch.config import Settings
    from nightbatch.db import make_engine
    from nightbatch.pricing import load_price_table
    from nightbatch.report.summary import summarize
    from nightbatch.runs import start_run
    from nightbatch.services import Services
    from nightbatch.sources import enqueue_source, queued_count
    from nightbatch.storage import open_store
    from nightbatch.submit.step import submit_step
    from nightbatch.tasktypes import load_task_types

    def advance(seconds: float) -> None:
        httpx2.post(f"{base_url}/_emulator/clock/advance", json={"seconds": seconds}, timeout=600)

    with scratch_folder() as folder, scratch_database("sqlite", folder) as url:
        settings = Settings(anthropic_api_key=None)
        services = Services(
            settings=settings,
            engine=make_engine(url),
            store=open_store(str(folder / "store")),
            registry=load_task_types(EXAMPLES / "nightbatch-4x.toml"),  # the routes docs/benchmarks.md measured
            prices=load_price_table(),
            worker="bench",
            base_url=base_url,
        )
        enqueued = enqueue_source(services, tasks_dir, default_task_type=None)
        run_id = start_run(services.engine, "benchmark", {"tasks": tasks_dir})
        for _round in range(settings.max_attempts + 1):
            submit_step(services, run_id=run_id)
            for _poll in range(10):
                advance(3600)
                if collect_step(services).still_open == 0:
                    break
            if queued_count(services, None) == 0:
                break
        summary = summarize(services.engine, services.prices, run_id=run_id)
        services.close()
    levels = summary.savings
    return {
        "tasks": enqueued.inserted,
        "responses": summary.billed_responses,
        "outcomes": summary.outcomes,
        "naive": levels.naive_pusd,
        "routed": levels.routed_pusd,
        "batched": levels.batched_pusd,
        "billed": levels.actual_pusd,
        "hit_rate": summary.cache_hit_rate,
    }


def _row(name: str, result: dict[str, Any]) -> CostRow:
    usd = 1e-12
    outcomes = ", ".join(f"{n:,} {status}" for status, n in sorted(result["outcomes"].items()))
    return CostRow(name, result["tasks"], result["responses"], result["naive"] * usd, result["routed"] * usd,
                   result["batched"] * usd, result["billed"] * usd, result["hit_rate"], [outcomes])  # fmt: skip


def run(quick: bool = False) -> list[CostRow]:
    backfill_size = 2_000 if quick else 20_000
    rows = []
    with EmulatorProcess(quality_error_rates=ERROR_RATES) as emulator:
        rows.append(
            _row("example", run_child(case_workload, tasks_dir=str(EXAMPLES / "tasks"), base_url=emulator.base_url))
        )
        with scratch_folder() as folder:
            tasks = write_backfill(folder, backfill_size)
            result = run_child(case_workload, tasks_dir=str(tasks), base_url=emulator.base_url)
        rows.append(_row("classification backfill", result))
    return rows


def markdown_table(rows: list[CostRow]) -> str:
    lines = [
        "| workload | tasks | naive (all real-time, top model, no cache) | routing only | routing + batching | "
        "routing + batching + caching (billed) | cache hit rate | outcomes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:

        def share(value: float, naive: float = r.naive_usd) -> str:
            return f"${value:,.2f} ({value / naive:.1%})" if naive else f"${value:,.2f}"

        hit = "–" if r.cache_hit_rate is None else f"{r.cache_hit_rate:.1%}"
        lines.append(
            f"| {r.workload} | {r.tasks:,} | ${r.naive_usd:,.2f} (100%) | {share(r.routed_usd)} | "
            f"{share(r.batched_usd)} | {share(r.billed_usd)} | {hit} | {'; '.join(r.notes)} |"
        )
    return "\n".join(lines)
