"""Static facts about Claude models (tier, minimum cacheable prefix, tokenizer, thinking), read from a data file.

Prices live in the price table (:mod:`nightbatch.pricing`); this catalog holds the facts that decide
*behaviour*: which tier a model is on (for escalation ladders), below which prefix length the API
silently ignores a cache breakpoint (for TTL decisions and for the emulator's cache model), which
tokenizer family counts its tokens, whether it thinks unless told not to, and what request features it
refuses. Dated ids (``claude-haiku-4-5-20251001``) are aliases that resolve to one entry.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path

from nightbatch.errors import ConfigError, UnknownModelError

__all__ = ["ModelInfo", "canonical_model", "load_catalog", "model_info"]

_TOKENIZERS = ("legacy", "v2")
_THINKING_DEFAULTS = ("off", "adaptive")


@dataclass(frozen=True)
class ModelInfo:
    """What nightbatch knows about one model id."""

    model: str
    family: str
    tier: int
    min_cacheable_tokens: int
    max_output_tokens: int
    generation: str = "4"
    tokenizer: str = "legacy"  # "legacy" or "v2" (the newer family: ~1.3x the tokens for the same text)
    thinking_default: str = "off"  # "adaptive": thinks (billed as output) unless sent thinking disabled
    supports_prefill: bool = True
    supports_forced_tool: bool = True
    supports_structured_outputs: bool = True
    aliases: tuple[str, ...] = field(default=())
    released: date | None = None
    source: str = ""

    @property
    def thinks_by_default(self) -> bool:
        """True when a request that says nothing about thinking gets (and pays for) adaptive thinking."""
        return self.thinking_default == "adaptive"


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
            info = ModelInfo(
                model=model,
                family=str(row["family"]),
                tier=int(row["tier"]),
                min_cacheable_tokens=int(row["min_cacheable_tokens"]),
                max_output_tokens=int(row["max_output_tokens"]),
                generation=str(row.get("generation", "4")),
                tokenizer=str(row.get("tokenizer", "legacy")),
                thinking_default=str(row.get("thinking_default", "off")),
                supports_prefill=bool(row.get("supports_prefill", True)),
                supports_forced_tool=bool(row.get("supports_forced_tool", True)),
                supports_structured_outputs=bool(row.get("supports_structured_outputs", True)),
                aliases=tuple(str(a) for a in row.get("aliases", ())),
                released=row.get("released"),
                source=str(row.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: model {model!r}: bad or missing field {exc}") from exc
        if info.tokenizer not in _TOKENIZERS:
            raise ConfigError(f"{source}: model {model!r}: tokenizer must be one of {_TOKENIZERS}")
        if info.thinking_default not in _THINKING_DEFAULTS:
            raise ConfigError(f"{source}: model {model!r}: thinking_default must be one of {_THINKING_DEFAULTS}")
        catalog[model] = info
    return catalog


@lru_cache(maxsize=8)
def _aliases(path: Path | None) -> dict[str, str]:
    catalog = load_catalog(path)
    found: dict[str, str] = {}
    for model, info in catalog.items():
        for alias in info.aliases:
            if alias in catalog or alias in found:
                raise ConfigError(f"model alias {alias!r} names two catalog entries")
            found[alias] = model
    return found


def canonical_model(model: str, path: Path | None = None) -> str:
    """The catalog id for ``model``, resolving dated ids; ``model`` itself when the catalog does not know it."""
    return _aliases(path).get(model, model)


def model_info(model: str, path: Path | None = None) -> ModelInfo:
    """Facts for ``model``; a clear error for a model the catalog does not know."""
    catalog = load_catalog(path)
    try:
        return catalog[canonical_model(model, path)]
    except KeyError:
        raise UnknownModelError(model, str(path or _default_catalog_path()), list(catalog)) from None
