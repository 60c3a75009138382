"""Static facts about Claude models (tier, minimum cacheable prefix), read from a data file.

Prices live in the price table (:mod:`nightbatch.pricing`); this catalog holds the facts that decide
*behaviour*: which tier a model is on (for escalation ladders) and below which prefix length the API
silently ignores a cache breakpoint (for TTL decisions and for the emulator's cache model).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from nightbatch.errors import ConfigError, UnknownModelError

__all__ = ["ModelInfo", "load_catalog", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """What nightbatch knows about one model id."""

    model: str
    family: str
    tier: int
    min_cacheable_tokens: int
    max_output_tokens: int


def _default_catalog_path() -> Path:
    return Path(str(resources.files("nightbatch") / "data" / "models.toml"))


@lru_cache(maxsize=8)
def load_catalog(path: Path | None = None) -> dict[str, ModelInfo]:
    """Load the model catalog (the packaged one unless ``path`` is given)."""
    source = path or _default_catalog_path()
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read model catalog {source}: {exc}") from exc
    catalog: dict[str, ModelInfo] = {}
    for model, row in raw.get("models", {}).items():
        try:
            catalog[model] = ModelInfo(
                model=model,
                family=str(row["family"]),
                tier=int(row["tier"]),
                min_cacheable_tokens=int(row["min_cacheable_tokens"]),
                max_output_tokens=int(row["max_output_tokens"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: model {model!r}: bad or missing field {exc}") from exc
    return catalog


def model_info(model: str, path: Path | None = None) -> ModelInfo:
    """Facts for ``model``; a clear error for a model the catalog does not know."""
    catalog = load_catalog(path)
    try:
        return catalog[model]
    except KeyError:
        raise UnknownModelError(model, str(path or _default_catalog_path()), list(catalog)) from None
