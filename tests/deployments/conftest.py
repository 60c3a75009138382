"""Fixtures for the production-shape checks: everything here is offline and fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deployments.support import ROOT, load_prefect_spec


@pytest.fixture(scope="session")
def deployments_by_name() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in load_prefect_spec()["deployments"]}


@pytest.fixture
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Entrypoints in prefect.yaml are relative to the repository root, as for `prefect deploy`."""
    monkeypatch.chdir(ROOT)
    return ROOT
