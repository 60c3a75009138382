"""The price table: per-model USD prices per million tokens, read from a versioned TOML file.

The packaged table is ``nightbatch/data/prices.toml``; users point at their own with
:func:`load_price_table`. A table has a top-level ``version`` string and one or more
``[[models.<model-id>]]`` rows per model::

    version = "2026-11-01"

    [[models.claude-haiku-4-5]]
    input = "1.00"            # USD per million tokens; strings (or TOML numbers) parsed as Decimal
    output = "5.00"
    cache_write_5m = "1.25"
    cache_write_1h = "2.00"
    cache_read = "0.10"
    effective_from = 2025-01-01
    source = "where the figures come from"
    # optional: dearer prices on every token of a request whose prompt exceeds `above` tokens
    long_prompt = { above = 100000, input = "0.50", output = "2.50", cache_write_5m = "0.625",
                    cache_write_1h = "1.00", cache_read = "0.05" }

The price of a model at a date is its row with the latest ``effective_from`` on or before that date; a
dated id (an alias in the model catalog) is priced as its catalog entry. Every price must be a whole
number of picodollars per token, also after the batch discount and the 1.1x US-inference multiplier (see
:mod:`nightbatch.pricing.cost`), so that costs are exact integers; a table that breaks this is rejected.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

from nightbatch.catalog import canonical_model
from nightbatch.errors import ConfigError, UnknownModelError

__all__ = ["PRICE_FIELDS", "ModelPrice", "PriceTable", "default_price_table_path", "load_price_table"]

#: The price columns of a row, all in USD per million tokens.
PRICE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_ROW_FIELDS = frozenset((*PRICE_FIELDS, "effective_from", "source"))
_OPTIONAL_FIELDS = frozenset(("long_prompt",))
_BAND_FIELDS = frozenset((*PRICE_FIELDS, "above"))

# A price p in $/MTok is p * 10**6 picodollars per token; the multipliers ever applied to it are the
# batch discount (0.5) and the US-inference multiplier (1.1), alone or together (0.55). Kept here rather
# than imported from cost.py so the two modules stay acyclic; tests pin that they agree.
_PUSD_PER_USD_PER_MTOK = Decimal(10**6)
_SMALLEST_MULTIPLIER = Decimal("0.5")
_GEO_MULTIPLIER = Decimal("1.1")
_MULTIPLIERS = (Decimal(1), _SMALLEST_MULTIPLIER, _GEO_MULTIPLIER, _SMALLEST_MULTIPLIER * _GEO_MULTIPLIER)


@dataclass(frozen=True)
class ModelPrice:
    """One row of the price table: a model's prices in USD per million tokens from ``effective_from`` on."""

    model: str
    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    effective_from: date
    source: str
    long_prompt_above: int | None = None
    """Prompt size (input + cache writes + cache reads) above which ``long_prompt`` prices every token."""
    long_prompt: ModelPrice | None = None
    """The band's prices (same model, date and source), or None when the model has no such band."""

    def for_prompt(self, prompt_tokens: int) -> ModelPrice:
        """The prices one request of ``prompt_tokens`` prompt tokens pays: this row, or its long-prompt band."""
        band, above = self.long_prompt, self.long_prompt_above
        return band if band is not None and above is not None and prompt_tokens > above else self


@dataclass(frozen=True)
class PriceTable:
    """A loaded price table. ``path`` is the file it came from (named in every error)."""

    version: str
    path: Path
    rows: dict[str, tuple[ModelPrice, ...]]  # per model, sorted by effective_from

    def models(self) -> list[str]:
        """The model ids this table prices, sorted."""
        return sorted(self.rows)

    def knows(self, model: str) -> bool:
        """True when the table has a row for ``model`` (or for the catalog entry a dated id names)."""
        return canonical_model(model) in self.rows or model in self.rows

    def price(self, model: str, at: date | None = None) -> ModelPrice:
        """The price of ``model`` in effect on ``at`` (default: today, UTC).

        A dated id is priced as its catalog entry. Raises :class:`UnknownModelError` for a model the table
        has no row for, and :class:`ConfigError` when every row for it starts after ``at``: a cost is never
        silently zero.
        """
        rows = self.rows.get(model) or self.rows.get(canonical_model(model))
        if not rows:
            raise UnknownModelError(model, str(self.path), list(self.rows))
        when = at if at is not None else datetime.now(UTC).date()
        effective = [row for row in rows if row.effective_from <= when]
        if not effective:
            raise ConfigError(
                f"{self.path}: no price for model {model!r} on {when.isoformat()}: its earliest row is "
                f"effective from {rows[0].effective_from.isoformat()}. Add a row with an earlier effective_from."
            )
        return effective[-1]


def default_price_table_path() -> Path:
    """The price table shipped inside the package."""
    return Path(str(resources.files("nightbatch") / "data" / "prices.toml"))


def load_price_table(path: Path | None = None) -> PriceTable:
    """Load and validate a price table: ``path``, or the packaged one (cached) when ``path`` is None.

    A missing, unparsable or malformed file raises :class:`ConfigError` naming the file (and the row).
    """
    if path is None:
        return _load_default()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> PriceTable:
    return _load(default_price_table_path())


def _load(path: Path) -> PriceTable:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read price table {path}: {exc}") from exc

    version = raw.get("version")
    if not isinstance(version, str) or not version.strip():
        raise ConfigError(f'{path}: the price table needs a top-level version string, e.g. version = "2026-11-01"')
    models = raw.get("models")
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"{path}: the price table has no [[models.<model-id>]] rows")

    rows: dict[str, tuple[ModelPrice, ...]] = {}
    for model, model_rows in models.items():
        if not isinstance(model_rows, list):
            raise ConfigError(f"{path}: model {model!r}: write its rows as [[models.{model}]] (an array of tables)")
        parsed = [_parse_row(path, model, index, row) for index, row in enumerate(model_rows, start=1)]
        parsed.sort(key=lambda row: row.effective_from)
        for earlier, later in pairwise(parsed):
            if earlier.effective_from == later.effective_from:
                raise ConfigError(
                    f"{path}: model {model!r} has two rows effective from {later.effective_from.isoformat()}"
                )
        rows[model] = tuple(parsed)
    return PriceTable(version=version, path=path, rows=rows)


def _parse_row(path: Path, model: str, index: int, row: Any) -> ModelPrice:
    where = f"{path}: [[models.{model}]] row {index}"
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a table")
    missing = sorted(_ROW_FIELDS - row.keys())
    unknown = sorted(row.keys() - _ROW_FIELDS - _OPTIONAL_FIELDS)
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else ""]
        raise ConfigError(f"{where}: {'; '.join(p for p in parts if p)} (fields: {', '.join(sorted(_ROW_FIELDS))})")
    prices = _prices(where, row)
    source = row["source"]
    if not isinstance(source, str):
        raise ConfigError(f"{where}: source must be a string")
    effective_from = _parse_date(where, row["effective_from"])
    above, band = None, None
    if "long_prompt" in row:
        above, band_prices = _parse_band(where, row["long_prompt"])
        band = ModelPrice(model, *band_prices, effective_from=effective_from, source=source)
    return ModelPrice(model, *prices, effective_from=effective_from, source=source, long_prompt_above=above,
                      long_prompt=band)  # fmt: skip


def _prices(where: str, row: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    """The five PRICE_FIELDS of ``row``, in the order ModelPrice declares them."""
    i, o, w5, w1, r = (_parse_price(where, name, row[name]) for name in PRICE_FIELDS)
    return i, o, w5, w1, r


def _parse_band(where: str, band: Any) -> tuple[int, tuple[Decimal, Decimal, Decimal, Decimal, Decimal]]:
    where = f"{where}: long_prompt"
    if not isinstance(band, dict):
        raise ConfigError(f"{where}: expected a table {{above = N, input = ..., ...}}")
    missing, unknown = sorted(_BAND_FIELDS - band.keys()), sorted(band.keys() - _BAND_FIELDS)
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else ""]
        raise ConfigError(f"{where}: {'; '.join(p for p in parts if p)} (fields: {', '.join(sorted(_BAND_FIELDS))})")
    above = band["above"]
    if isinstance(above, bool) or not isinstance(above, int) or above < 0:
        raise ConfigError(f"{where}: above must be a non-negative whole number of prompt tokens, got {above!r}")
    return above, _prices(where, band)


def _parse_price(where: str, name: str, value: Any) -> Decimal:
    # bool is an int subclass; TOML floats go through str() so 1.25 stays exactly 1.25.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: {name} must be a number of USD per million tokens, got {value!r}")
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"{where}: {name} = {value!r} is not a number") from None
    if not price.is_finite() or price < 0:
        raise ConfigError(f"{where}: {name} = {value!r} must be a finite, non-negative number")
    for multiplier in _MULTIPLIERS:
        per_token = price * _PUSD_PER_USD_PER_MTOK * multiplier
        if per_token != per_token.to_integral_value():
            raise ConfigError(
                f"{where}: {name} = {value!r} is not a whole number of picodollars per token after the 50% batch "
                "discount and the 1.1x US-inference multiplier; use a multiple of 0.00002 USD per million tokens"
            )
    return price


def _parse_date(where: str, value: Any) -> date:
    if isinstance(value, datetime):
        raise ConfigError(f"{where}: effective_from must be a date without a time, e.g. 2026-11-01")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: effective_from must be a date like 2026-11-01, got {value!r}")
