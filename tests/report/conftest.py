"""Report fixtures: the hand-computed ledger of :mod:`tests.report.ledger` on each test database."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from nightbatch.pricing import PriceTable, load_price_table
from tests.report.ledger import Ledger, build_ledger


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return build_ledger(engine)


@pytest.fixture(scope="session")
def prices() -> PriceTable:
    return load_price_table()
