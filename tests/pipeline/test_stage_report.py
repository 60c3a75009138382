"""The report of a chained night: cost per completed pipeline item, upstream disagreement, de-duplication."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from nightbatch.db.models import TaskStage, TaskTwin, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.pricing import pusd_to_usd
from nightbatch.queue.enqueue import enqueue_jsonl
from nightbatch.report.build import build_report
from nightbatch.report.pipelines import pipeline_estimates, pipeline_lines
from nightbatch.report.query import Selection
from nightbatch.report.render import report_markdown, report_to_dict
from nightbatch.report.run_summary import summary_markdown
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore
from nightbatch.tasktypes import load_task_types
from tests.pipeline.conftest import make_services
from tests.pipeline.stages_workload import CONFIG, enqueue_chains, task_lines
from tests.pipeline.test_stages import drain, tasks_by_type

SHADOWED = CONFIG.replace(
    'template = "Ticket: {text}"',
    'template = "Ticket: {text}"\nescalation = ["claude-haiku-4-5", "claude-sonnet-4-6"]\n'
    "routing = { shadow_fraction = 1.0 }",
    1,
)


@pytest.fixture
def shadowed(engine: Engine, tmp_path: Path, emulator: EmulatorServer) -> Iterator[Services]:
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    config = tmp_path / "shadowed.toml"
    config.write_text(SHADOWED, encoding="utf-8")
    services.registry = load_task_types(config)
    yield services
    services.close()


def test_the_report_shows_cost_per_completed_item_disagreement_and_deduplication(
    shadowed: Services, emulator: EmulatorServer
):
    emulator.configure(quality_error_rates={1: 0.5})  # Haiku answers half its labels wrong: Sonnet disagrees
    enqueue_chains(shadowed.engine, copies=3)
    # The same tickets again under other keys: twins of the first copy in the first submit.
    enqueue_jsonl(shadowed.engine, [line.replace('"key": "', '"key": "again-') for line in task_lines(1)[:-1]])
    drain(shadowed, emulator)
    report = build_report(shadowed.engine, shadowed.prices, Selection.everything(), registry=shadowed.registry)
    section = report.pipelines
    assert section is not None
    by_name = {p.pipeline: p for p in section.pipelines}
    triage = by_name["triage"]
    found = tasks_by_type(shadowed.engine)
    assert triage.items == len(found["triage"]) == 16
    assert triage.stages == ["triage", "dates", "reply", "judge"]
    with shadowed.engine.connect() as conn:
        links = [TaskStage.model_validate(r._mapping) for r in conn.execute(select(TaskStage))]
        usage = [UsageRecord.model_validate(r._mapping) for r in conn.execute(select(UsageRecord))]
    items = {t.id: {t.id} for t in found["triage"]}
    for link in links:
        if link.pipeline == "triage":
            items[link.root_task_id].add(link.task_id)
    every_task = {t.id: t for ts in found.values() for t in ts}
    completed = [r for r, members in items.items() if all(every_task[m].status == "succeeded" for m in members)]
    cost = sum(u.cost_pusd or 0 for u in usage if any(u.task_id in m for m in items.values()))
    assert (triage.completed, triage.cost_pusd) == (len(completed), cost)
    assert triage.per_completed_pusd == cost // len(completed)
    # Disagreement: recomputed from the attempts, and the stage tasks built on the disagreed outputs.
    (upstream,) = [u for u in section.upstream if u.task_type == "triage"]
    assert upstream.shadowed > 0
    assert 0 < upstream.disagreed < upstream.shadowed
    assert upstream.downstream_on_disagreed <= sum(1 for s in links if s.pipeline == "triage")
    assert {u.task_type for u in section.upstream} == {"triage", "dates", "rank"}
    # 4 first-stage twins, and the stage tasks they set off: identical to their leaders' (the same payload and
    # the same upstream output), so de-duplicated in their turn.
    with shadowed.engine.connect() as conn:
        twin_rows = conn.execute(select(func.count()).select_from(TaskTwin)).scalar_one()
    assert section.twins["dedup"][0] == twin_rows > 4
    assert section.twins["dedup"][1] > 0
    as_json = report_to_dict(report)["pipelines"]
    (triage_json,) = [p for p in as_json["pipelines"] if p["pipeline"] == "triage"]
    assert triage_json["per_completed_item_usd"] == str(pusd_to_usd(triage.per_completed_pusd))
    assert as_json["levers"][0]["lever"] == "de-duplication"
    json.dumps(as_json)
    text = "\n".join(pipeline_lines(section))
    assert "pipeline triage (triage -> dates -> reply -> judge)" in text
    assert f"de-duplication: {twin_rows} task(s) identical requests sent once" in text
    assert "## Pipelines, de-duplication and reuse" in report_markdown(report)
    assert "per completed item" in summary_markdown(report)  # the nightly run's summary artifact


def test_estimate_prices_a_first_stage_file_through_its_pipeline(shadowed: Services, emulator: EmulatorServer):
    assert [e.describe() for e in pipeline_estimates(shadowed.engine, shadowed.registry, {"triage": 10})] == [
        "pipeline triage (triage -> dates -> reply -> judge): no completed item measured yet, so the later stages "
        "are not in this forecast"
    ]
    enqueue_chains(shadowed.engine, copies=2)
    drain(shadowed, emulator)
    (estimate,) = pipeline_estimates(shadowed.engine, shadowed.registry, {"triage": 10, "reply": 3})
    section = build_report(shadowed.engine, shadowed.prices, Selection.everything(), registry=shadowed.registry)
    assert section.pipelines is not None
    (measured,) = [p for p in section.pipelines.pipelines if p.pipeline == "triage"]
    assert measured.per_completed_pusd is not None
    assert (estimate.measured_items, estimate.expected_pusd) == (measured.completed, measured.per_completed_pusd * 10)
    assert estimate.to_dict()["expected_pipeline_usd"] == str(pusd_to_usd(measured.per_completed_pusd * 10))
