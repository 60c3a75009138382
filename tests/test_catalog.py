"""The model catalog: the current lineup, dated ids, and what each model refuses or does by default."""

from __future__ import annotations

import pytest

from nightbatch.catalog import canonical_model, load_catalog, model_info
from nightbatch.errors import UnknownModelError

LINEUP = [
    "claude-haiku-5-5",
    "claude-sonnet-5-5",
    "claude-opus-5-5",
    "claude-fable-5-1",
    "claude-fable-5-2",
    "claude-haiku-4-5",
    "claude-sonnet-4-6",
    "claude-opus-4-8",
]


def test_the_current_lineup_and_the_seed_tiers_are_known() -> None:
    assert set(LINEUP) <= set(load_catalog())


@pytest.mark.parametrize("model", [m for m in LINEUP if "-5-" in m])
def test_5x_models_cache_from_512_use_the_new_tokenizer_and_think_by_default(model: str) -> None:
    info = model_info(model)
    assert info.min_cacheable_tokens == 512
    assert info.tokenizer == "v2"
    assert info.thinks_by_default


def test_older_tokenizer_and_no_default_thinking_on_the_seed_tiers() -> None:
    assert model_info("claude-haiku-4-5").tokenizer == "legacy"
    assert not model_info("claude-haiku-4-5").thinks_by_default
    assert model_info("claude-opus-4-8").tokenizer == "v2"  # 4.7 and later use the newer tokenizer


def test_dated_id_resolves_to_its_entry() -> None:
    assert canonical_model("claude-haiku-4-5-20251001") == "claude-haiku-4-5"
    assert model_info("claude-haiku-4-5-20251001").model == "claude-haiku-4-5"
    assert canonical_model("claude-nonexistent-9") == "claude-nonexistent-9"


def test_unknown_model_fails_closed_listing_the_known_ids() -> None:
    with pytest.raises(UnknownModelError, match="claude-haiku-5-5"):
        model_info("claude-haiku-9-9")


def test_haiku_55_refuses_prefill_and_55_models_refuse_forced_tools() -> None:
    assert not model_info("claude-haiku-5-5").supports_prefill
    assert model_info("claude-sonnet-5-5").supports_prefill
    assert not model_info("claude-opus-5-5").supports_forced_tool
    assert model_info("claude-opus-4-8").supports_forced_tool
