"""Task-type config and the current lineup: unknown models refused, dated ids accepted, thinking choices warned."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nightbatch.errors import ConfigError
from nightbatch.tasktypes import load_task_types


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "nightbatch.toml"
    path.write_text(body, encoding="utf-8")
    return path


def one_type(tmp_path: Path, extra: str = "", model: str = "claude-haiku-5-5", max_tokens: int = 16) -> Path:
    return write(tmp_path, f'[task_types.triage]\nmodel = "{model}"\nmax_tokens = {max_tokens}\n{extra}\n')


def test_unknown_model_is_refused_at_load_with_the_known_ids(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_task_types(one_type(tmp_path, model="claude-haiku-9-9"))
    message = str(info.value)
    assert "claude-haiku-9-9" in message
    assert "field `model`" in message
    for known in ("claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5", "claude-fable-5-2", "claude-haiku-4-5"):
        assert known in message


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('escalation = ["claude-haiku-5-5", "claude-sonet-5-5"]', "escalation"),
        ('routing = { candidates = ["claude-haiku-4-5", "claude-nope"] }', "routing.candidates"),
    ],
)
def test_unknown_model_in_ladder_or_candidates_is_refused(tmp_path: Path, extra: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as info:
        load_task_types(one_type(tmp_path, extra + '\nthinking = "disabled"'))
    assert "claude-haiku-5-5" in str(info.value)  # the known ids are listed


def test_a_dated_id_is_accepted(tmp_path: Path) -> None:
    extra = 'escalation = ["claude-haiku-4-5-20251001", "claude-sonnet-4-6"]'
    registry = load_task_types(one_type(tmp_path, extra, model="claude-haiku-4-5-20251001"))
    assert registry.get("triage").model == "claude-haiku-4-5-20251001"
    assert registry.warnings == []  # Haiku 4.5 does not think by default


def test_missing_thinking_choice_on_a_thinking_model_is_a_warning_naming_the_type_and_the_cost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="nightbatch.tasktypes"):
        registry = load_task_types(one_type(tmp_path, max_tokens=1000))
    assert len(registry.warnings) == 1
    warning = registry.warnings[0]
    assert "'triage'" in warning
    assert "claude-haiku-5-5" in warning
    assert "thinks by default" in warning
    # 600 thinking tokens (the stated default) x $0.50/MTok x 0.5 (batch) x 1,000 tasks = $0.15
    assert "$0.1500 per 1,000 tasks" in warning
    assert warning in caplog.text


def test_the_warning_names_every_thinking_rung_of_the_ladder(tmp_path: Path) -> None:
    extra = 'escalation = ["claude-haiku-4-5", "claude-sonnet-5-5", "claude-opus-5-5"]'
    registry = load_task_types(one_type(tmp_path, extra, model="claude-haiku-4-5", max_tokens=8))
    assert [w.split(" routes to ")[1].split(",")[0] for w in registry.warnings] == [
        "claude-sonnet-5-5",
        "claude-opus-5-5",
    ]
    assert all("capped by its max_tokens" in w for w in registry.warnings)  # 8 tokens: thinking can eat them


@pytest.mark.parametrize("choice", ['"disabled"', '"adaptive"', "{ budget_tokens = 2048 }"])
def test_saying_what_you_want_silences_the_warning(tmp_path: Path, choice: str) -> None:
    registry = load_task_types(one_type(tmp_path, f"thinking = {choice}", max_tokens=4096))
    assert registry.warnings == []


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('thinking = "sometimes"', "thinking"),
        ('thinking = "disabled"\neffort = "extreme"', "effort"),
        ("thinking = { budget_tokens = 2048 }", "must be below max_tokens"),
        ('thinking = "disabled"\nstructured = true', "needs an `output_schema`"),
        ('thinking = "disabled"\ninference_geo = "mars"', "inference_geo"),
    ],
)
def test_bad_thinking_effort_structured_geo_settings_are_refused(tmp_path: Path, extra: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_task_types(one_type(tmp_path, extra, max_tokens=1000))


@pytest.mark.parametrize("name", ["nightbatch.toml", "nightbatch-4x.toml"])
def test_both_example_configs_load_cleanly(name: str) -> None:
    registry = load_task_types(Path(__file__).resolve().parents[1] / "examples" / name)
    assert len(registry) == 4
    assert registry.warnings == []
