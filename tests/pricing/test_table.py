"""The price table: shipped prices, dated rows, and clear errors for unknown models and broken files."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from nightbatch.errors import ConfigError, UnknownModelError
from nightbatch.pricing import PRICE_FIELDS, default_price_table_path, load_price_table
from nightbatch.pricing import table as table_module
from nightbatch.pricing.cost import BATCH_DISCOUNT, GEO_MULTIPLIERS

ROW = """
input = "1.00"
output = "5.00"
cache_write_5m = "1.25"
cache_write_1h = "2.00"
cache_read = "0.10"
source = "test"
"""


def write_table(tmp_path: Path, body: str, name: str = "prices.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def one_row_table(tmp_path: Path, **overrides: str) -> Path:
    fields = {
        "input": '"1.00"',
        "output": '"5.00"',
        "cache_write_5m": '"1.25"',
        "cache_write_1h": '"2.00"',
        "cache_read": '"0.10"',
        "effective_from": "2025-01-01",
        "source": '"test"',
    }
    fields.update(overrides)
    lines = "\n".join(f"{k} = {v}" for k, v in fields.items() if v != "<omit>")
    return write_table(tmp_path, f'version = "t1"\n\n[[models.m]]\n{lines}\n')


# -- the shipped table ---------------------------------------------------------------------------------


def test_shipped_table_prices_the_supported_models() -> None:
    table = load_price_table()
    assert table.models() == [
        "claude-fable-5-1",
        "claude-fable-5-2",
        "claude-haiku-4-5",
        "claude-haiku-5-5",
        "claude-opus-4-8",
        "claude-opus-5-5",
        "claude-sonnet-4-6",
        "claude-sonnet-5-5",
    ]
    assert table.version
    assert table.path == default_price_table_path()


@pytest.mark.parametrize(
    ("model", "input_", "output"),
    [
        ("claude-haiku-4-5", "1", "5"),
        ("claude-sonnet-4-6", "3", "15"),
        ("claude-opus-4-8", "5", "25"),  # not the seed article's outdated $15/$75
        ("claude-sonnet-5-5", "2", "10"),
        ("claude-opus-5-5", "4", "20"),
    ],
)
def test_shipped_input_and_output_prices(model: str, input_: str, output: str) -> None:
    price = load_price_table().price(model)
    assert (price.input, price.output) == (Decimal(input_), Decimal(output))


@pytest.mark.parametrize("model", load_price_table().models())
def test_shipped_cache_multipliers(model: str) -> None:
    price = load_price_table().price(model)
    # Opus 5.5 reads at 0.05x; Sonnet 5.5 too since its 2026-10-07 cut; the Fables at 0.025x.
    read_multiplier = {
        "claude-opus-5-5": Decimal("0.05"),
        "claude-sonnet-5-5": Decimal("0.05"),
        "claude-fable-5-1": Decimal("0.025"),
        "claude-fable-5-2": Decimal("0.025"),
    }.get(model, Decimal("0.1"))
    assert price.cache_write_5m == price.input * Decimal("1.25")
    assert price.cache_write_1h == price.input * 2
    assert price.cache_read == price.input * read_multiplier


def test_default_table_is_loaded_once() -> None:
    assert load_price_table() is load_price_table()


def test_integrality_check_uses_the_batch_discount() -> None:
    # table.py cannot import cost.py (cycle), so it keeps its own copy of the smallest multiplier.
    assert table_module._SMALLEST_MULTIPLIER == BATCH_DISCOUNT
    assert GEO_MULTIPLIERS["us"] == table_module._GEO_MULTIPLIER


# -- dated rows --------------------------------------------------------------------------------------


def test_price_at_a_date_is_the_latest_row_effective_on_or_before_it(tmp_path: Path) -> None:
    path = write_table(
        tmp_path,
        'version = "v2"\n'
        f"[[models.m]]\neffective_from = 2026-06-01\n{ROW.replace('1.00', '2.00', 1)}\n"
        f"[[models.m]]\neffective_from = 2025-01-01\n{ROW}\n",
    )
    table = load_price_table(path)
    assert table.price("m", date(2025, 1, 1)).input == Decimal("1.00")
    assert table.price("m", date(2026, 5, 31)).input == Decimal("1.00")
    assert table.price("m", date(2026, 6, 1)).input == Decimal("2.00")
    assert table.price("m").input == Decimal("2.00")  # today
    with pytest.raises(ConfigError, match=r"no price for model 'm' on 2024-12-31") as info:
        table.price("m", date(2024, 12, 31))
    assert str(path) in str(info.value)


def test_toml_numbers_are_read_exactly(tmp_path: Path) -> None:
    path = one_row_table(tmp_path, input="1.1", output="7", cache_read="0.11")
    price = load_price_table(path).price("m")
    assert (price.input, price.output, price.cache_read) == (Decimal("1.1"), Decimal(7), Decimal("0.11"))


# -- errors --------------------------------------------------------------------------------------------


def test_unknown_model_names_the_model_and_the_file() -> None:
    table = load_price_table()
    with pytest.raises(UnknownModelError) as info:
        table.price("claude-nonexistent-9")
    message = str(info.value)
    assert "claude-nonexistent-9" in message
    assert str(default_price_table_path()) in message
    assert info.value.model == "claude-nonexistent-9"


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_price_table(missing)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"input": '"cheap"'}, "input = 'cheap' is not a number"),
        ({"output": '"-5"'}, "non-negative"),
        ({"cache_read": '"NaN"'}, "finite"),
        ({"input": "true"}, "input must be a number"),
        ({"cache_read": '"0.0000001"'}, "not a whole number of picodollars"),
        ({"cache_read": '"0.000001"'}, "not a whole number of picodollars"),  # integral only before the discount
        ({"cache_write_1h": "<omit>"}, "missing cache_write_1h"),
        ({"cache_write5m": '"1.25"'}, "unknown cache_write5m"),
        ({"effective_from": "2025-01-01T00:00:00"}, "without a time"),
        ({"effective_from": '"last tuesday"'}, "effective_from must be a date"),
        ({"source": "3"}, "source must be a string"),
    ],
)
def test_malformed_row_names_file_and_row(tmp_path: Path, overrides: dict[str, str], problem: str) -> None:
    path = one_row_table(tmp_path, **overrides)
    with pytest.raises(ConfigError) as info:
        load_price_table(path)
    message = str(info.value)
    assert f"{path}: [[models.m]] row 1" in message
    assert problem in message


def test_smallest_valid_price_is_accepted(tmp_path: Path) -> None:
    # 0.00002 $/MTok = 20 pUSD/token: x0.5 (batch) x1.1 (US inference) = 11, still whole (issue 14).
    path = one_row_table(tmp_path, cache_read='"0.00002"')
    assert load_price_table(path).price("m").cache_read == Decimal("0.00002")


def test_a_price_the_geo_multiplier_would_make_fractional_is_refused(tmp_path: Path) -> None:
    # 0.000002 $/MTok is 1 pUSD/token after the batch discount, but 1.1 pUSD with inference_geo = "us".
    with pytest.raises(ConfigError, match=r"multiple of 0\.00002 "):
        load_price_table(one_row_table(tmp_path, cache_read='"0.000002"'))


def test_effective_from_may_be_a_string(tmp_path: Path) -> None:
    path = one_row_table(tmp_path, effective_from='"2025-03-04"')
    assert load_price_table(path).price("m").effective_from == date(2025, 3, 4)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("version = \n", "cannot read price table"),
        (f"[[models.m]]\neffective_from = 2025-01-01\n{ROW}", "top-level version"),
        ('version = "v"\n', "no [[models.<model-id>]] rows"),
        (f'version = "v"\n[models.m]\neffective_from = 2025-01-01\n{ROW}', "write its rows as [[models.m]]"),
        (
            f'version = "v"\n[[models.m]]\neffective_from = 2025-01-01\n{ROW}\n'
            f"[[models.m]]\neffective_from = 2025-01-01\n{ROW}",
            "two rows effective from 2025-01-01",
        ),
    ],
)
def test_malformed_table_names_the_file(tmp_path: Path, body: str, problem: str) -> None:
    path = write_table(tmp_path, body, name="broken-prices.toml")
    with pytest.raises(ConfigError) as info:
        load_price_table(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_price_fields_are_the_model_price_columns() -> None:
    price = load_price_table().price("claude-haiku-4-5")
    assert all(isinstance(getattr(price, name), Decimal) for name in PRICE_FIELDS)
