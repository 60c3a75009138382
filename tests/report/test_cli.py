"""``nightbatch report`` through Typer's test runner, on the hand-computed ledger."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nightbatch.cli import app
from tests.report.ledger import ACTUAL, Ledger

runner = CliRunner()


@pytest.fixture
def cli_env(db_url: str, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    monkeypatch.chdir(tmp_path)  # no nightbatch.toml of the repository
    monkeypatch.setenv("NIGHTBATCH_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    return ledger


def test_table_is_the_default(cli_env: Ledger):
    result = runner.invoke(app, ["report", "--run", str(cli_env.runs["R2"])])
    assert result.exit_code == 0, result.output
    assert f"nightbatch cost report: run {cli_env.runs['R2']}" in result.stdout
    assert "Cost per task" in result.stdout
    assert "claude-sonnet-4-6" in result.stdout
    assert "warning: cache hit rate of triage fell" in result.stdout
    assert "caching saved" in result.stdout


def test_json_to_stdout_parses(cli_env: Ledger):
    result = runner.invoke(app, ["report", "--run", str(cli_env.runs["R2"]), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Decimal(data["costs"]["total"]["cost_usd"]) == Decimal(ACTUAL) / 10**12
    assert len(data["warnings"]) == 1
    assert "warning:" in result.stderr  # also said where a person sees it


def test_csv_to_a_file_for_a_day(cli_env: Ledger, tmp_path: Path):
    out = tmp_path / "costs.csv"
    result = runner.invoke(app, ["report", "--day", "2026-11-20", "-f", "csv", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[-1]["task_type"] == "total"
    assert Decimal(rows[-1]["cost_usd"]) == Decimal(ACTUAL) / 10**12
    assert result.stdout == ""


def test_default_is_the_latest_run_and_charts_are_written(cli_env: Ledger, tmp_path: Path):
    result = runner.invoke(app, ["report", "--charts", str(tmp_path / "charts")])
    assert result.exit_code == 0, result.output
    assert f"run {cli_env.runs['R3']}" in result.stdout
    for name in ("report.html", "cost_per_day.png", "hit_rate.png"):
        assert (tmp_path / "charts" / name).stat().st_size > 0
    assert "report.html" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--day", "20-11-2026"], "--day '20-11-2026' is not a date"),
        (["--run", "1", "--since", "2026-11-01"], "choose one of --run, --day or --since/--until"),
        (["--run", "999"], "run 999 does not exist"),
        (["--since", "2026-11-21", "--until", "2026-11-20"], "is after --until"),
    ],
)
def test_bad_options_exit_2_with_one_line(cli_env: Ledger, args: list[str], message: str):
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
