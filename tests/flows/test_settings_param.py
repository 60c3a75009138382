"""Settings travel CLI -> flow as a parameter without secrets; the flow run resolves the secrets itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.runtime import settings_for
from nightbatch.config import Settings, without_password

URL = "postgresql+psycopg://nightly:s3cret@db.internal:5432/nightbatch"


def test_public_values_hold_no_secret_and_survive_json() -> None:
    import json

    settings = Settings(anthropic_api_key="sk-ant-test", database_url=URL, lease_seconds=60)
    public = settings.public_values()
    text = json.dumps(public)  # what Prefect stores and shows
    assert "sk-ant-test" not in text
    assert "s3cret" not in text
    assert "anthropic_api_key" not in public
    assert public["database_url"] == "postgresql+psycopg://nightly@db.internal:5432/nightbatch"
    assert public["lease_seconds"] == 60


def test_the_flow_run_gets_the_values_and_its_own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-worker")
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", URL)
    monkeypatch.setenv("NIGHTBATCH_LEASE_SECONDS", "900")
    public = Settings(lease_seconds=60, home=Path("/tmp/nb")).public_values()
    settings = settings_for(public)
    assert settings.api_key_value() == "sk-ant-worker"
    assert settings.database_url == URL  # the password restored for the same database
    assert settings.lease_seconds == 60  # the caller's value, not the worker's environment
    assert settings.home == Path("/tmp/nb")


def test_a_deployment_run_reads_its_own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTBATCH_LEASE_SECONDS", "120")
    assert settings_for(None).lease_seconds == 120


def test_without_password() -> None:
    assert without_password(URL) == "postgresql+psycopg://nightly@db.internal:5432/nightbatch"
    assert without_password("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"
    assert without_password("postgresql://u@h/db") == "postgresql://u@h/db"
