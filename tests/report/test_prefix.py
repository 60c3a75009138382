"""Padding advice and the below-plan check, priced by hand (claude-haiku-4-5 batch: input $0.50, 1 h write
$1.00, read $0.05 per MTok)."""

from __future__ import annotations

from decimal import Decimal

from nightbatch.pricing import load_price_table
from nightbatch.report.prefix import below_plan, padding_advice, prefix_figures
from nightbatch.report.query import BatchCache, BatchPlan

PRICES = load_price_table()


def test_padding_advice_prices_the_padded_prefix_against_sending_it_uncached():
    advice = padding_advice("ticket_triage", "claude-haiku-4-5", 2500, 10_000, PRICES, hit_rate=1.0)
    assert advice is not None
    # Now: 10,000 x 2,500 tokens at $0.50/MTok = $12.50. Padded to 4,096: one write, 9,999 reads.
    padded = (4096 * Decimal("1.00") + 9999 * 4096 * Decimal("0.05")) / 1_000_000
    assert advice.saving_usd == Decimal("12.5") - padded.quantize(Decimal("0.000001"))
    text = advice.text()
    assert text.startswith("ticket_triage: prefix 2,500 tokens < 4,096 minimum of claude-haiku-4-5, not cached;")
    assert f"would save ${advice.saving_usd:.2f} a run of 10,000" in text
    assert "claude-haiku-5-5 caches from 512" in text
    # At or above the minimum there is nothing to advise; a tiny prefix sent rarely is not worth padding.
    assert padding_advice("t", "claude-haiku-4-5", 5000, 10_000, PRICES) is None
    rare = padding_advice("t", "claude-haiku-4-5", 100, 3, PRICES)
    assert rare is not None
    assert rare.saving_usd is None


def batch(batch_id: int, ttl: str | None, responses: int, read: int, write: int) -> BatchCache:
    return BatchCache(batch_id, f"msgbatch_{batch_id}", "claude-opus-4-8", "judge", ttl, responses, read, write, 0)


def test_every_prefix_token_lands_in_one_bucket_and_a_poor_fan_out_is_named():
    batches = [
        batch(1, "1h", 1, 0, 10_000),  # the pilot
        batch(2, "1h", 10, 30_000, 70_000),  # a fan-out that read 30%
        batch(3, None, 5, 0, 0),  # sent unmarked
    ]
    plans = {
        1: BatchPlan(1, "abc", "pilot", {"prefix_tokens": 10_000, "hit_rate": 0.8}),
        2: BatchPlan(2, "abc", "fanout", {"prefix_tokens": 10_000, "hit_rate": 0.8}),
        3: BatchPlan(3, "abc", None, {"prefix_tokens": 10_000}),
    }
    [f] = prefix_figures(batches, plans)
    assert (f.read, f.written, f.below_minimum, f.not_marked) == (30_000, 80_000, 0, 50_000)
    assert f.sent == 160_000
    assert f.hit_rate == 30_000 / 160_000
    assert f.read_share == 30_000 / 110_000
    [item] = below_plan(batches, plans)
    assert item.startswith("batch msgbatch_2 (judge, group claude-opus-4-8/abc): read 30% of its cached prefix")
    assert "its plan expected 80%" in item
