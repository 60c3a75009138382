"""Reporting after a calibration has decided (issue 15, item 2): the report and the nightly flow still work."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nightbatch.calibrate import apply_calibration, finish_calibration, start_calibration
from nightbatch.cli import app
from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from tests.quality.conftest import enqueue_tickets, run_until_done, use_types


def test_report_after_a_calibration_decided(
    local_services: Services, emulator: EmulatorServer, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    services = local_services
    use_types(services)
    emulator.configure(quality_error_rates={1: 0.0, 2: 0.0, 3: 0.0})
    enqueue_tickets(services, 12)
    calibration_id = start_calibration(services, "triage", 6)
    emulator.advance(3600)
    assert finish_calibration(services, calibration_id) is not None
    apply_calibration(services, calibration_id)
    run_until_done(services, emulator, rounds=2)

    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(tmp_path / "absent.toml"))
    for fmt in ("table", "json"):
        today = f"{datetime.now(UTC):%Y-%m-%d}"
        result = CliRunner().invoke(app, ["report", "--day", today, "--format", fmt])
        assert result.exit_code == 0, result.output
        assert result.exception is None
        assert "triage" in result.output
        if fmt == "json":
            assert f'"calibration_id": {calibration_id}' in result.output
        else:
            assert f"#{calibration_id}" in " ".join(result.output.split())
