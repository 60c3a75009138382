"""Golden costs of the 5.5 / Fable lineup, every figure worked out by hand in picodollars (pUSD).

Per-token batch prices used below (USD/MTok x 10**6 pUSD x 0.5):
  Haiku 5.5       input 50,000  output 250,000    5m write 62,500   1h write 100,000  read 5,000
  Haiku 5.5 band  input 250,000 output 1,250,000  5m write 312,500  1h write 500,000  read 25,000
  Sonnet 5.5      input 1e6     output 5e6        5m write 1.25e6   1h write 2e6      read 1e5 / 5e4 (cut)
  Opus 5.5        input 2e6     output 1e7        5m write 2.5e6    1h write 4e6      read 1e5
  Fable 5.1       input 5e6     output 2.5e7      5m write 6.25e6   1h write 1e7      read 1.25e5
  Fable 5.2       input 4e6     output 2e7        5m write 5e6      1h write 8e6      read 1e5
"""

from __future__ import annotations

from datetime import date

import pytest

from nightbatch.errors import ConfigError
from nightbatch.pricing import Usage, load_price_table, price_usage

AFTER = date(2026, 11, 20)  # every 5.x model released, Sonnet 5.5's read cut in force


def test_haiku_5_5_band_edge_at_100000_prompt_tokens_is_the_ordinary_price() -> None:
    usage = Usage(input_tokens=10_000, cache_read_tokens=90_000, output_tokens=100)  # prompt = 100,000
    cost = price_usage(load_price_table(), "claude-haiku-5-5", usage, "batch", AFTER)
    # 10,000 x 50,000 + 90,000 x 5,000 + 100 x 250,000
    assert cost.total_pusd == 500_000_000 + 450_000_000 + 25_000_000 == 975_000_000


def test_haiku_5_5_one_token_over_the_band_prices_every_token_higher_output_included() -> None:
    usage = Usage(input_tokens=10_001, cache_read_tokens=90_000, output_tokens=100)  # prompt = 100,001
    cost = price_usage(load_price_table(), "claude-haiku-5-5", usage, "batch", AFTER)
    # 10,001 x 250,000 + 90,000 x 25,000 + 100 x 1,250,000
    assert cost.input_pusd == 2_500_250_000
    assert cost.cache_read_pusd == 2_250_000_000
    assert cost.output_pusd == 125_000_000
    assert cost.total_pusd == 4_875_250_000


def test_haiku_5_5_cache_writes_count_toward_the_band() -> None:
    usage = Usage(input_tokens=1, cache_write_1h_tokens=100_000)  # prompt = 100,001
    cost = price_usage(load_price_table(), "claude-haiku-5-5", usage, "batch", AFTER)
    assert cost.total_pusd == 1 * 250_000 + 100_000 * 500_000 == 50_000_250_000
    # The same in real time: exactly twice.
    assert price_usage(load_price_table(), "claude-haiku-5-5", usage, "standard", AFTER).total_pusd == 100_000_500_000


@pytest.mark.parametrize(
    ("billed", "pusd"), [(date(2026, 10, 6), 100_000_000_000), (date(2026, 10, 8), 50_000_000_000)]
)
def test_sonnet_5_5_reads_priced_by_the_row_in_force_when_billed(billed: date, pusd: int) -> None:
    usage = Usage(cache_read_tokens=1_000_000)
    cost = price_usage(load_price_table(), "claude-sonnet-5-5", usage, "batch", billed)
    assert cost.total_pusd == pusd  # $0.20/MTok x 0.5 before 10-07, $0.10/MTok x 0.5 from it


def test_the_day_of_the_cut_uses_the_new_row() -> None:
    table = load_price_table()
    assert (
        table.price("claude-sonnet-5-5", date(2026, 10, 7)).cache_read
        == table.price("claude-sonnet-5-5", AFTER).cache_read
    )


def test_us_inference_multiplies_every_category_by_1_1_exactly() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=100, cache_write_5m_tokens=10, cache_write_1h_tokens=10,
                  cache_read_tokens=10_000)  # fmt: skip
    table = load_price_table()
    plain = price_usage(table, "claude-opus-5-5", usage, "batch", AFTER)
    us = price_usage(table, "claude-opus-5-5", usage, "batch", AFTER, inference_geo="us")
    # Opus 5.5 batch x 1.1: input 2.2e6, output 1.1e7, 5m 2.75e6, 1h 4.4e6, read 1.1e5 pUSD per token
    assert us.input_pusd == 1_000 * 2_200_000
    assert us.output_pusd == 100 * 11_000_000
    assert us.cache_write_5m_pusd == 10 * 2_750_000
    assert us.cache_write_1h_pusd == 10 * 4_400_000
    assert us.cache_read_pusd == 10_000 * 110_000
    assert us.total_pusd * 10 == plain.total_pusd * 11
    assert price_usage(table, "claude-opus-5-5", usage, "batch", AFTER, inference_geo="global") == plain


def test_us_inference_on_the_cheapest_price_stays_whole() -> None:
    # Haiku 5.5 read: $0.01/MTok = 10,000 pUSD x 0.5 x 1.1 = 5,500 pUSD per token.
    usage = Usage(cache_read_tokens=3)
    assert (
        price_usage(load_price_table(), "claude-haiku-5-5", usage, "batch", AFTER, inference_geo="us").total_pusd
        == 16_500
    )


def test_us_inference_stacks_with_the_long_prompt_band() -> None:
    usage = Usage(input_tokens=100_001, output_tokens=10)
    cost = price_usage(load_price_table(), "claude-haiku-5-5", usage, "batch", AFTER, inference_geo="us")
    # band input 250,000 x 1.1 = 275,000; band output 1,250,000 x 1.1 = 1,375,000
    assert cost.total_pusd == 100_001 * 275_000 + 10 * 1_375_000


def test_thinking_tokens_are_billed_as_output() -> None:
    # 1,200 output tokens of which 1,000 were thinking: all 1,200 at the output price.
    cost = price_usage(
        load_price_table(), "claude-haiku-5-5", Usage(input_tokens=50, output_tokens=1_200), "batch", AFTER
    )
    assert cost.output_pusd == 1_200 * 250_000 == 300_000_000
    assert cost.total_pusd == 50 * 50_000 + 300_000_000


STACKING = Usage(input_tokens=1_000, cache_write_5m_tokens=2_000, cache_write_1h_tokens=3_000,
                 cache_read_tokens=4_000, output_tokens=500)  # fmt: skip


@pytest.mark.parametrize(
    ("model", "components"),
    [
        # input, 5m write, 1h write, read, output
        ("claude-haiku-5-5", (50_000_000, 125_000_000, 300_000_000, 20_000_000, 125_000_000)),
        ("claude-sonnet-5-5", (1_000_000_000, 2_500_000_000, 6_000_000_000, 200_000_000, 2_500_000_000)),
        ("claude-opus-5-5", (2_000_000_000, 5_000_000_000, 12_000_000_000, 400_000_000, 5_000_000_000)),
        ("claude-fable-5-1", (5_000_000_000, 12_500_000_000, 30_000_000_000, 500_000_000, 12_500_000_000)),
        ("claude-fable-5-2", (4_000_000_000, 10_000_000_000, 24_000_000_000, 400_000_000, 10_000_000_000)),
    ],
)
def test_batch_and_cache_stack_on_every_new_model(model: str, components: tuple[int, ...]) -> None:
    cost = price_usage(load_price_table(), model, STACKING, "batch", AFTER)
    got = (cost.input_pusd, cost.cache_write_5m_pusd, cost.cache_write_1h_pusd, cost.cache_read_pusd, cost.output_pusd)
    assert got == components
    assert cost.total_pusd == sum(components)
    assert price_usage(load_price_table(), model, STACKING, "standard", AFTER).total_pusd == 2 * sum(components)


def test_a_dated_id_prices_as_its_entry() -> None:
    table = load_price_table()
    assert table.knows("claude-haiku-4-5-20251001")
    usage = Usage(input_tokens=1_000, output_tokens=10)
    assert price_usage(table, "claude-haiku-4-5-20251001", usage, "batch", AFTER) == price_usage(
        table, "claude-haiku-4-5", usage, "batch", AFTER
    )


def test_a_model_billed_before_its_first_row_is_refused_not_free() -> None:
    with pytest.raises(ConfigError, match="claude-fable-5-2"):
        price_usage(load_price_table(), "claude-fable-5-2", Usage(input_tokens=1), "batch", date(2026, 11, 1))
