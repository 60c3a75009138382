"""Campaign fixtures: a Services object on the test database, a local output folder and the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from nightbatch.storage import open_store
from tests.pipeline.conftest import make_services


@pytest.fixture
def services(engine: Engine, emulator: EmulatorServer, tmp_path: Path) -> Iterator[Services]:
    built = make_services(engine, open_store(str(tmp_path / "store")), emulator.base_url)
    yield built
    built.close()
