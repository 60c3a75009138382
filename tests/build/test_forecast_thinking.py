"""The forecast counts thinking: none when off, the ledger's history when there is some, else the stated default."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from nightbatch.config import Settings
from nightbatch.db.models import Task, UsagePurpose, UsageRecord
from nightbatch.forecast import forecast_tasks
from nightbatch.pricing import load_price_table
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore
from nightbatch.tasktypes import load_task_types
from nightbatch.thinking import DEFAULT_THINKING_TOKENS

CONFIG = """
[task_types.off]
model = "claude-haiku-5-5"
max_tokens = 2000
thinking = "disabled"

[task_types.default]
model = "claude-haiku-5-5"
max_tokens = 2000

[task_types.budget]
model = "claude-haiku-5-5"
max_tokens = 4000
thinking = { budget_tokens = 1500 }

[task_types.old]
model = "claude-haiku-4-5"
max_tokens = 2000

[task_types.us]
model = "claude-haiku-5-5"
max_tokens = 10
thinking = "disabled"
inference_geo = "us"

[task_types.plain]
model = "claude-haiku-5-5"
max_tokens = 10
thinking = "disabled"
"""


@pytest.fixture
def services(engine: Engine, tmp_path: Path) -> Services:
    config = tmp_path / "nightbatch.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return Services(
        settings=Settings(anthropic_api_key=None),
        engine=engine,
        store=LocalObjectStore(tmp_path / "store"),
        registry=load_task_types(config),
        prices=load_price_table(),
        worker="w",
    )


def tasks(*types: str, n: int = 4) -> list[tuple[int, str, dict[str, object], None]]:
    return [(i, t, {"text": "hello"}, None) for t in types for i in range(n)]


def test_expected_thinking_per_type_without_history(services: Services) -> None:
    forecast = forecast_tasks(services, tasks("off", "default", "budget", "old"), use_api=False)
    thinking = {g.task_type: g.expected_thinking_tokens for g in forecast.groups}
    assert thinking == {"off": 0, "default": 4 * DEFAULT_THINKING_TOKENS, "budget": 4 * 1500, "old": 0}
    assert "thinking output tokens" in forecast.describe()


def test_expected_thinking_from_the_ledger_history(services: Services) -> None:
    with Session(services.engine) as session:
        for i in range(3):
            task = Task(task_type="default", payload={}, idempotency_key=f"k{i}")
            session.add(task)
            session.flush()
            session.add(UsageRecord(task_id=task.id, model="claude-haiku-5-5", service_tier="batch", input_tokens=10,
                                    output_tokens=150, thinking_tokens=100, price_version="v", cost_pusd=1,
                                    purpose=UsagePurpose.TASK))  # fmt: skip
        session.commit()
    (group,) = forecast_tasks(services, tasks("default"), use_api=False).groups
    assert group.expected_thinking_tokens == 4 * 100
    assert group.expected_output_tokens == 4 * 150  # 50 visible + 100 thinking


def test_us_inference_costs_1_1x_in_the_forecast(services: Services) -> None:
    forecast = forecast_tasks(services, tasks("us", "plain"), use_api=False)
    by_type = {g.task_type: g for g in forecast.groups}
    assert by_type["us"].upper_bound_usd == by_type["plain"].upper_bound_usd * 11 / 10
