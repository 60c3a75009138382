"""A nightly run of a backfill of stage 1 flows into every later stage, without another command."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.nightly import nightly
from flows.params import NightlyParams
from nightbatch.emulator import EmulatorServer
from tests.flows.test_flows import task_counts
from tests.pipeline.stages_workload import task_lines, write_config


@pytest.mark.usefixtures("prefect_harness")
def test_a_night_for_the_first_stage_runs_every_stage_of_its_chains(
    monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path, emulator: EmulatorServer
):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("NIGHTBATCH_ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(write_config(tmp_path)))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
    emulator.configure(time_scale=36_000)
    source = tmp_path / "tasks"
    source.mkdir()
    (source / "triage.jsonl").write_text("\n".join(task_lines()[:-1]) + "\n")  # the four tickets: stage 1 only
    state = nightly(
        NightlyParams(source=str(source), task_type=["triage"], poll_seconds=0.2, deadline_minutes=3, wait=True),
        return_state=True,
    )
    assert state.is_completed(), state.message
    # 4 triage, 3 replies, 2 date extractions, 1 judgement: three stages deep, in one night.
    assert task_counts(db_url) == {"succeeded": 10}
