"""Cost: what a workload is billed, against the naive baseline, each lever in turn, and the caching floor.

Three workloads run end to end through the pipeline's own steps against the emulator, in a process of its
own, with the demo's per-tier error rates (so some outputs fail their checks and escalate). The emulator
models the batch cache as the live API behaves (docs/emulator.md): items of one batch never read each
other's writes, a later batch reads what an earlier batch wrote. So every cacheable group goes out as a
one-task **pilot** batch first; the collect step moves the group on when the pilot is ingested, and the
rest is sent (the loop below is the nightly flow's: submit, then poll, submitting again as soon as a pilot
has ended):

- **example**: ``examples/tasks`` as shipped (3,000 tasks of four types: triage, dates, reply drafts,
  policy judgements);
- **classification backfill**: mostly ticket triage (90%), the rest date extraction;
- **prefix-heavy**: policy judgements only (a ~12k-token policy on Opus 4.8 shared by every task).

Figures, all from the run's ledger (:func:`nightbatch.report.summary.summarize`) and re-priced with the
real price table: (a) naive: all real-time on the top model, no caching; (b) routing only; (c) routing +
batching; (d) what was billed; (e) the **floor**: what was billed with, per cacheable prefix group, its
prefix cost replaced by one 1 h write and reads for every other response; (f) **cached without a pilot**:
the same with every response of a cacheable group paying a 1 h write (what sending the cold batch with
breakpoints costs). (e) and (f) are computed from the run's own prefix figures
(:mod:`nightbatch.report.prefix`), not run. The
**pilot minutes** are the longest provider time a pilot batch took, from its creation to its end
(emulator time: its queueing delay and one wave). Tokens, cache hits and costs are the **emulator's**
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
    floor_usd: float
    cold_cached_usd: float
    prefix_hit_rate: float | None
    cache_hit_rate: float | None
    pilots: int
    pilot_minutes: float | None
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


def write_prefix_heavy(folder: Path, tasks: int) -> Path:
    """Policy judgements only: the shipped cases, cycled under new keys, in ``folder/tasks``.

    Each cycle's copy of a case says which copy it is: otherwise identical requests of one submit are sent
    once (de-duplication), and this workload is here to measure caching a long shared prefix.
    """
    cases = (EXAMPLES / "tasks" / "policy_judgement.jsonl").read_text().splitlines()
    out = folder / "tasks"
    out.mkdir(parents=True)
    with (out / "policy_judgement.jsonl").open("w") as lines:
        for n in range(tasks):
            row = json.loads(cases[n % len(cases)])
            row["key"] = f"heavy-{n}"
            if n >= len(cases):
                row["payload"]["text"] = f"{row['payload']['text']} (filed again, copy {n // len(cases)})"
            lines.write(json.dumps(row) + "\n")
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

    advance(2 * 3600)  # every workload starts with a cold cache: the previous workload's entries have expired
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
            for _poll in range(400):
                advance(60)  # the nightly flow polls at most a minute apart
                collected = collect_step(services)
                if collected.pilots_ended:
                    submit_step(services, run_id=run_id)  # the groups that waited for their pilots
                    continue
                if collected.still_open == 0:
                    break
            if queued_count(services, None) == 0:
                break
        summary = summarize(services.engine, services.prices, run_id=run_id)
        floor, cold = _floor_and_cold(summary, services.prices)
        pilots, pilot_minutes = _pilots(services.engine, run_id)
        services.close()
    levels = summary.savings
    return {
        "floor": floor,
        "cold": cold,
        "prefix_hit_rate": summary.prefix_hit_rate,
        "pilots": pilots,
        "pilot_minutes": pilot_minutes,
        "tasks": enqueued.inserted,
        "responses": summary.billed_responses,
        "outcomes": summary.outcomes,
        "naive": levels.naive_pusd,
        "routed": levels.routed_pusd,
        "batched": levels.batched_pusd,
        "billed": levels.actual_pusd,
        "hit_rate": summary.cache_hit_rate,
    }


def _floor_and_cold(summary: Any, prices: Any) -> tuple[int, int]:
    """The floor and "cached without a pilot", in picodollars: the billed cost with each cacheable prefix
    group's prefix cost as billed (reads, writes, unmarked input) replaced by one 1 h write plus reads for
    every other response (floor), or by a 1 h write on every response (cold). Every purpose counts (shadow
    responses are billed at their recorded cost in every level after routing)."""
    from nightbatch.catalog import model_info

    floor = cold = summary.savings.actual_pusd
    for f in summary.prefix:
        if f.responses == 0 or f.prefix_tokens < model_info(f.model).min_cacheable_tokens:
            continue
        p, n = f.cached_prefix_tokens or f.prefix_tokens, f.responses  # the API's own count when it was cached
        billed = _cost(prices, f.model, cache_read_tokens=f.read, cache_write_1h_tokens=f.written,
                       input_tokens=f.not_marked)  # fmt: skip
        floor += _cost(prices, f.model, cache_write_1h_tokens=p, cache_read_tokens=(n - 1) * p) - billed
        cold += _cost(prices, f.model, cache_write_1h_tokens=n * p) - billed
    return floor, cold


def _cost(prices: Any, model: str, **tokens: int) -> int:
    from nightbatch.pricing import Usage, price_usage

    return int(price_usage(prices, model, Usage(**tokens), "batch").total_pusd)


def _pilots(engine: Any, run_id: int) -> tuple[int, float | None]:
    """How many pilot batches the run sent, and the longest provider time one took (minutes)."""
    from sqlalchemy import select
    from sqlmodel import col

    from nightbatch.db.models import Batch

    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Batch.submitted_at), col(Batch.ended_at)).where(
                col(Batch.run_id) == run_id, col(Batch.cache_role) == "pilot"
            )
        ).all()
    spans = [(end - start).total_seconds() / 60 for start, end in rows if start and end]
    return len(rows), (max(spans) if spans else None)


def _row(name: str, result: dict[str, Any]) -> CostRow:
    usd = 1e-12
    outcomes = ", ".join(f"{n:,} {status}" for status, n in sorted(result["outcomes"].items()))
    return CostRow(name, result["tasks"], result["responses"], result["naive"] * usd, result["routed"] * usd,
                   result["batched"] * usd, result["billed"] * usd, result["floor"] * usd, result["cold"] * usd,
                   result["prefix_hit_rate"], result["hit_rate"], result["pilots"], result["pilot_minutes"],
                   [outcomes])  # fmt: skip


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
        with scratch_folder() as folder:
            tasks = write_prefix_heavy(folder, 500 if quick else 5_000)
            result = run_child(case_workload, tasks_dir=str(tasks), base_url=emulator.base_url)
        rows.append(_row("prefix-heavy (policy judgements)", result))
    return rows


def markdown_table(rows: list[CostRow]) -> str:
    lines = [
        "| workload | tasks | naive (all real-time, top model, no cache) | routing only | routing + batching | "
        "routing + batching + caching (billed) | floor (one 1 h write per group, then reads) | "
        "cached without a pilot | prefix hit rate (read / all prefix tokens) | read / (read + write) | "
        "pilots (longest, emulator minutes) | outcomes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:

        def share(value: float, naive: float = r.naive_usd) -> str:
            return f"${value:,.2f} ({value / naive:.1%})" if naive else f"${value:,.2f}"

        def pct(rate: float | None) -> str:
            return "–" if rate is None else f"{rate:.1%}"

        minutes = "–" if r.pilot_minutes is None else f"{r.pilot_minutes:.1f}"
        lines.append(
            f"| {r.workload} | {r.tasks:,} | ${r.naive_usd:,.2f} (100%) | {share(r.routed_usd)} | "
            f"{share(r.batched_usd)} | {share(r.billed_usd)} | {share(r.floor_usd)} | {share(r.cold_cached_usd)} | "
            f"{pct(r.prefix_hit_rate)} | {pct(r.cache_hit_rate)} | {r.pilots} ({minutes}) | {'; '.join(r.notes)} |"
        )
    return "\n".join(lines)


# -- the chained workload (issue 18): cost per completed pipeline item ---------------------------------------

PIPELINES_CONFIG = EXAMPLES / "pipelines.toml"
_TOPICS = {
    "refund": "refund card bank days",
    "shipping": "parcel courier tracking delivery",
    "password": "password reset email link",
    "invoice": "invoice company address download",
}


@dataclass
class ChainRow:
    """One pipeline of the chained workload: items, what they cost per completed item, and the naive baseline."""

    pipeline: str
    stages: str
    items: int
    completed: int
    stage_tasks: int
    billed_usd: float
    naive_usd: float
    disagreement: float | None
    downstream_on_disagreed: int

    @property
    def per_item_usd(self) -> float:
        return self.billed_usd / self.completed if self.completed else float("nan")

    @property
    def naive_per_item_usd(self) -> float:
        return self.naive_usd / self.completed if self.completed else float("nan")


def write_chained(folder: Path, tickets: int, questions: int, seed: int = 18) -> Path:
    """Tickets for classify -> draft, and questions with eight candidate passages each for rerank -> answer."""
    generate, rng = _generator(), random.Random(seed)
    out = folder / "tasks"
    out.mkdir(parents=True)
    with (out / "ticket_triage.jsonl").open("w") as lines:
        for n in range(tickets):
            label = rng.choice(generate.LABELS)
            text = f"[{rng.choice(generate.PRODUCTS)}] {rng.choice(generate.ISSUES[label])}. Ticket {n}."
            lines.write(json.dumps({"key": f"chain-triage-{n}", "payload": {"text": text}}) + "\n")
    with (out / "passage_rank.jsonl").open("w") as lines:
        for n in range(questions):
            topic = rng.choice(sorted(_TOPICS))
            words = _TOPICS[topic].split()
            others = [w for t, ws in _TOPICS.items() if t != topic for w in ws.split()]
            passages = [f"Passage {n}.{k}: about {' '.join(rng.sample(words if k < 2 else others, 3))}, "
                        f"with {rng.randint(40, 120)} words of detail." for k in range(8)]  # fmt: skip
            rng.shuffle(passages)
            payload = {"question": f"What about {topic}: {' '.join(words)}?", "documents": passages}
            lines.write(json.dumps({"key": f"chain-question-{n}", "payload": payload}) + "\n")
    return out


def case_chained(tasks_dir: str, base_url: str) -> dict[str, Any]:
    """Run the chained workload to the end (child process) as the nightly flow does; per pipeline figures."""
    import httpx2

    from nightbatch.collect.poll import collect_step
    from nightbatch.config import Settings
    from nightbatch.db import make_engine
    from nightbatch.pipeline.graph import StageGraph
    from nightbatch.pricing import load_price_table
    from nightbatch.report.build import build_report
    from nightbatch.report.query import resolve_selection
    from nightbatch.runs import start_run
    from nightbatch.services import Services
    from nightbatch.sources import enqueue_source, queued_count
    from nightbatch.storage import open_store
    from nightbatch.submit.step import submit_step
    from nightbatch.tasktypes import load_task_types

    def advance(seconds: float) -> None:
        httpx2.post(f"{base_url}/_emulator/clock/advance", json={"seconds": seconds}, timeout=600)

    advance(2 * 3600)
    with scratch_folder() as folder, scratch_database("sqlite", folder) as url:
        settings = Settings(anthropic_api_key=None)
        registry = load_task_types(PIPELINES_CONFIG)
        store = open_store(str(folder / "store"))
        services = Services(settings=settings, engine=make_engine(url), store=store, registry=registry,
                            prices=load_price_table(), worker="bench", base_url=base_url)  # fmt: skip
        enqueue_source(services, tasks_dir, default_task_type=None)
        run_id = start_run(services.engine, "benchmark", {"tasks": tasks_dir})
        for _round in range(settings.max_attempts + StageGraph.of(registry).depth()):
            submit_step(services, run_id=run_id)
            for _poll in range(400):
                advance(60)
                collected = collect_step(services)
                if collected.pilots_ended:
                    submit_step(services, run_id=run_id)
                    continue
                if collected.still_open == 0:
                    break
            if queued_count(services, None) == 0:
                break
        report = build_report(services.engine, services.prices, resolve_selection(services.engine, run_id=run_id),
                              registry=registry)  # fmt: skip
        services.close()
    section = report.pipelines
    assert section is not None
    naive = report.savings.naive_by_group
    upstream = {u.task_type: u for u in section.upstream}
    return {
        "pipelines": [
            {"pipeline": p.pipeline, "stages": " -> ".join(p.stages), "items": p.items, "completed": p.completed,
             "stage_tasks": p.stage_tasks, "billed": p.cost_pusd,
             "naive": sum(v for (task_type, _), v in naive.items() if task_type in p.stages),
             "disagreement": upstream[p.pipeline].disagreement_rate if p.pipeline in upstream else None,
             "on_disagreed": upstream[p.pipeline].downstream_on_disagreed if p.pipeline in upstream else 0}
            for p in section.pipelines
        ],
    }  # fmt: skip


def run_chained(quick: bool = False) -> list[ChainRow]:
    """The chained workload: classify -> draft and rerank -> answer, per completed item against naive."""
    tickets, questions = (300, 100) if quick else (3_000, 1_000)
    with EmulatorProcess(quality_error_rates=ERROR_RATES) as emulator, scratch_folder() as folder:
        tasks = write_chained(folder, tickets, questions)
        result = run_child(case_chained, tasks_dir=str(tasks), base_url=emulator.base_url)
    usd = 1e-12
    return [
        ChainRow(
            p["pipeline"],
            p["stages"],
            p["items"],
            p["completed"],
            p["stage_tasks"],
            p["billed"] * usd,
            p["naive"] * usd,
            p["disagreement"],
            p["on_disagreed"],
        )
        for p in result["pipelines"]
    ]


def chained_markdown_table(rows: list[ChainRow]) -> str:
    lines = [
        "| pipeline | items (completed) | stage tasks | billed | per completed item | naive (every stage real-time on "
        "the top model, no cache) per completed item | saved | upstream disagreement (downstream tasks on it) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        disagreement = "–" if r.disagreement is None else f"{r.disagreement:.1%} ({r.downstream_on_disagreed:,})"
        saved = 1 - r.billed_usd / r.naive_usd if r.naive_usd else float("nan")
        lines.append(
            f"| {r.stages} | {r.items:,} ({r.completed:,}) | {r.stage_tasks:,} | ${r.billed_usd:,.2f} | "
            f"${r.per_item_usd:,.5f} | ${r.naive_per_item_usd:,.5f} | {saved:.1%} | {disagreement} |"
        )
    return "\n".join(lines)
