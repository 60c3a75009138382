"""Exact costs: the seed article's worked figures, batch stacking, and the API usage shapes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from anthropic.types import CacheCreation
from anthropic.types import Usage as SdkUsage
from hypothesis import given
from hypothesis import strategies as st

from nightbatch.errors import UnknownModelError
from nightbatch.pricing import (
    Cost,
    PriceTable,
    Usage,
    load_price_table,
    price_usage,
    pusd_to_usd,
    usd_to_pusd,
)

SEED_TABLE_PATH = Path(__file__).with_name("seed_article_prices.toml")


@pytest.fixture(scope="module")
def seed_table() -> PriceTable:
    """The seed article's prices (Haiku $1/$5, writes 1.25x, reads 0.1x), so its figures can be checked."""
    return load_price_table(SEED_TABLE_PATH)


@pytest.fixture(scope="module")
def shipped() -> PriceTable:
    return load_price_table()


# -- the seed article's figures ----------------------------------------------------------------------------


def test_article_uncached_system_prompt_costs_two_dollars(seed_table: PriceTable) -> None:
    # "A 2,000-token system prompt sent 1,000 times per day at Haiku input rates ($1/M) costs $2.00/day."
    per_call = price_usage(seed_table, "claude-haiku-4-5", Usage(input_tokens=2_000), "standard")
    assert per_call.usd * 1_000 == Decimal("2.00")


def test_article_95_percent_hit_rate(seed_table: PriceTable) -> None:
    # The article says "about $0.35/day". Assumption stated here: 5-minute TTL; 950 of the 1,000 calls
    # read the 2,000-token prefix from cache (0.1x); each of the other 50 misses (the first call
    # included) writes it again at 1.25x. 50 x 2,000 x 1.25 + 950 x 2,000 x 0.1 = 315,000 input-price
    # tokens = $0.315. (Counting the 49 later misses as plain uncached input would give $0.2905.)
    miss = Usage(cache_write_5m_tokens=2_000)
    hit = Usage(cache_read_tokens=2_000)
    day = Usage()
    for _ in range(50):
        day += miss
    for _ in range(950):
        day += hit
    cost = price_usage(seed_table, "claude-haiku-4-5", day, "standard")
    assert cost.usd == Decimal("0.315")
    assert cost.cache_write_5m_pusd == usd_to_pusd(Decimal("0.125"))
    assert cost.cache_read_pusd == usd_to_pusd(Decimal("0.19"))
    assert day.prompt_tokens == 2_000 * 1_000


def test_article_15k_tokens_at_sonnet(seed_table: PriceTable) -> None:
    # "15,000 tokens of context ... At Sonnet rates, that is $0.045 per call just in input overhead."
    cost = price_usage(seed_table, "claude-sonnet-4-6", Usage(input_tokens=15_000), "standard")
    assert cost.usd == Decimal("0.045")


def test_article_fifty_dollars_realtime_is_twenty_five_in_batch(seed_table: PriceTable) -> None:
    # 1,000 Haiku calls of 25,000 input + 5,000 output tokens: $25 + $25 = $50 real-time.
    calls = Usage(input_tokens=25_000_000, output_tokens=5_000_000)
    assert price_usage(seed_table, "claude-haiku-4-5", calls, "standard").usd == Decimal(50)
    assert price_usage(seed_table, "claude-haiku-4-5", calls, "batch").usd == Decimal(25)


def test_seed_table_keeps_the_articles_outdated_opus_price(seed_table: PriceTable, shipped: PriceTable) -> None:
    one_mtok_out = Usage(output_tokens=1_000_000)
    assert price_usage(seed_table, "claude-opus-4-8", one_mtok_out, "standard").usd == Decimal(75)
    assert price_usage(shipped, "claude-opus-4-8", one_mtok_out, "standard").usd == Decimal(25)


# -- batch stacking with the cache multipliers ----------------------------------------------------------------

MTOK = 1_000_000


@pytest.mark.parametrize(
    ("usage", "multiple_of_input_price"),
    [
        (Usage(input_tokens=MTOK), Decimal("0.5")),
        (Usage(cache_write_5m_tokens=MTOK), Decimal("0.625")),
        (Usage(cache_write_1h_tokens=MTOK), Decimal("1.0")),
        (Usage(cache_read_tokens=MTOK), Decimal("0.05")),
    ],
)
def test_batch_prompt_multipliers(shipped: PriceTable, usage: Usage, multiple_of_input_price: Decimal) -> None:
    # Sonnet 5.5 read 0.1x input until its 2026-10-07 read cut (see the golden tests for after).
    before_cut = date(2026, 10, 6)
    for model in ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-8", "claude-sonnet-5-5"):
        input_price = shipped.price(model, before_cut).input
        assert price_usage(shipped, model, usage, "batch", before_cut).usd == input_price * multiple_of_input_price


def test_batch_one_hour_write_costs_exactly_the_standard_input_price(shipped: PriceTable) -> None:
    tokens = 123_457
    write = price_usage(shipped, "claude-opus-4-8", Usage(cache_write_1h_tokens=tokens), "batch")
    plain = price_usage(shipped, "claude-opus-4-8", Usage(input_tokens=tokens), "standard")
    assert write.total_pusd == plain.total_pusd


def test_opus_5_5_reads_are_five_percent_and_half_that_in_batch(shipped: PriceTable) -> None:
    read = Usage(cache_read_tokens=MTOK)
    assert price_usage(shipped, "claude-opus-5-5", read, "standard").usd == Decimal("0.20")  # 0.05 x $4
    batch = price_usage(shipped, "claude-opus-5-5", read, "batch")
    assert batch.usd == Decimal("0.10")
    assert batch.cache_read_pusd // MTOK == 100_000  # pUSD per token


def test_batch_output_is_half(shipped: PriceTable) -> None:
    out = Usage(output_tokens=MTOK)
    assert price_usage(shipped, "claude-sonnet-5-5", out, "batch").usd == Decimal(5)


def test_components_of_a_mixed_request(shipped: PriceTable) -> None:
    usage = Usage(
        input_tokens=1_000,
        output_tokens=500,
        cache_write_5m_tokens=2_000,
        cache_write_1h_tokens=4_000,
        cache_read_tokens=10_000,
    )
    cost = price_usage(shipped, "claude-sonnet-4-6", usage, "batch")
    # Sonnet 4.6: $3 in, $15 out; batch halves everything. Per token, in pUSD: 1.5e6 in, 7.5e6 out,
    # 1.875e6 5m write, 3e6 1h write, 0.15e6 read.
    assert cost == Cost(
        input_pusd=1_000 * 1_500_000,
        output_pusd=500 * 7_500_000,
        cache_write_5m_pusd=2_000 * 1_875_000,
        cache_write_1h_pusd=4_000 * 3_000_000,
        cache_read_pusd=10_000 * 150_000,
    )
    assert cost.usd == Decimal("0.0225")


token_counts = st.integers(min_value=0, max_value=10**9)
usages = st.builds(Usage, token_counts, token_counts, token_counts, token_counts, token_counts)


@given(usage=usages, model=st.sampled_from(load_price_table().models()))
def test_batch_is_exactly_half_of_standard(usage: Usage, model: str) -> None:
    table = load_price_table()
    standard = price_usage(table, model, usage, "standard")
    batch = price_usage(table, model, usage, "batch")
    assert batch.total_pusd * 2 == standard.total_pusd
    assert batch.usd * 2 == standard.usd


@given(a=usages, b=usages)
def test_cost_is_additive_over_usage(a: Usage, b: Usage) -> None:
    table = load_price_table()
    assert price_usage(table, "claude-opus-5-5", a + b, "batch") == (
        price_usage(table, "claude-opus-5-5", a, "batch") + price_usage(table, "claude-opus-5-5", b, "batch")
    )


# -- errors and units ------------------------------------------------------------------------------------


def test_unknown_model_is_never_free(seed_table: PriceTable) -> None:
    with pytest.raises(UnknownModelError) as info:
        price_usage(seed_table, "claude-sonnet-5-5", Usage(input_tokens=1), "batch")
    assert "claude-sonnet-5-5" in str(info.value)
    assert str(SEED_TABLE_PATH) in str(info.value)


def test_unknown_tier_is_refused(shipped: PriceTable) -> None:
    with pytest.raises(ValueError, match="priority"):
        price_usage(shipped, "claude-haiku-4-5", Usage(input_tokens=1), "priority")  # type: ignore[arg-type]


def test_picodollar_conversions() -> None:
    assert pusd_to_usd(1) == Decimal("0.000000000001")
    assert pusd_to_usd(2_000_000_000_000) == Decimal(2)
    assert str(pusd_to_usd(250)) == "2.50E-10"
    assert usd_to_pusd(Decimal("0.045")) == 45_000_000_000
    assert usd_to_pusd(pusd_to_usd(10**30 + 7)) == 10**30 + 7  # exact beyond float and Decimal precision
    with pytest.raises(ValueError, match="picodollars"):
        usd_to_pusd(Decimal("0.0000000000001"))
    assert usd_to_pusd(Decimal("-1.5")) == -1_500_000_000_000
    assert usd_to_pusd(Decimal("1E+3")) == 10**15


def test_cost_zero_and_sum() -> None:
    a = Cost(input_pusd=1, output_pusd=2, cache_write_5m_pusd=3, cache_write_1h_pusd=4, cache_read_pusd=5)
    assert Cost().total_pusd == 0
    assert sum([a, a], Cost()) == Cost(2, 4, 6, 8, 10)
    assert a.total_pusd == 15


# -- usage from the API ---------------------------------------------------------------------------------------


def test_usage_from_sdk_object_uses_the_ttl_breakdown() -> None:
    sdk = SdkUsage(
        input_tokens=50,
        output_tokens=200,
        cache_creation_input_tokens=3_000,
        cache_read_input_tokens=7_000,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=1_000, ephemeral_1h_input_tokens=2_000),
        service_tier="batch",
    )
    usage = Usage.from_api(sdk)
    assert usage == Usage(
        input_tokens=50,
        output_tokens=200,
        cache_write_5m_tokens=1_000,
        cache_write_1h_tokens=2_000,
        cache_read_tokens=7_000,
    )
    assert usage.prompt_tokens == 50 + 3_000 + 7_000


def test_usage_from_raw_dict_with_breakdown() -> None:
    raw = {
        "input_tokens": 5,
        "output_tokens": 6,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 40,
        "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
    }
    assert Usage.from_api(raw) == Usage(5, 6, 10, 20, 40)


def test_usage_without_breakdown_counts_writes_as_five_minute() -> None:
    raw = {"input_tokens": 5, "output_tokens": 6, "cache_creation_input_tokens": 30, "cache_creation": None}
    assert Usage.from_api(raw) == Usage(input_tokens=5, output_tokens=6, cache_write_5m_tokens=30)
    sdk = SdkUsage(input_tokens=1, output_tokens=2, cache_creation_input_tokens=3)
    assert Usage.from_api(sdk) == Usage(input_tokens=1, output_tokens=2, cache_write_5m_tokens=3)


def test_usage_null_and_missing_fields_are_zero() -> None:
    raw = {"input_tokens": 9, "output_tokens": None, "cache_read_input_tokens": None}
    assert Usage.from_api(raw) == Usage(input_tokens=9)
    assert Usage.from_api(SdkUsage(input_tokens=0, output_tokens=0)) == Usage()


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_usage_rejects_bad_counts(bad: object) -> None:
    with pytest.raises(ValueError, match="input_tokens"):
        Usage(input_tokens=bad)  # type: ignore[arg-type]
    if not isinstance(bad, int) or isinstance(bad, bool):
        with pytest.raises(ValueError, match="token count"):
            Usage.from_api({"input_tokens": bad})
