"""Identifiers shaped like the real API's: ``msgbatch_01…``, ``msg_01…``, ``req_011C…``, ``wrkspc_01…``.

Ids are base62 strings of the same length as the real ones. They come from a seeded generator (so a
run with the same seed and the same calls reproduces the same ids) or, for things that must render
identically on every download (result lines), from a hash of what they name.
"""

from __future__ import annotations

import hashlib
import random
import uuid

__all__ = ["IdFactory", "derived_id", "derived_uuid", "stable_hash", "unit_interval"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PREFIXES = {"msgbatch": "01", "msg": "01", "wrkspc": "01", "req": "011C"}
_LENGTH = 24  # characters after the underscore, as in the real ids


# Two base62 digits at a time (least significant first, as one at a time would give): half the divisions,
# which matters when every result line of a 100k-request batch renders a message id.
_PAIRS = [_ALPHABET[n % 62] + _ALPHABET[n // 62] for n in range(62 * 62)]


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width // 2):
        number, pair = divmod(number, 62 * 62)
        chars.append(_PAIRS[pair])
    if width % 2:
        chars.append(_ALPHABET[number % 62])
    return "".join(chars)


def _compose(kind: str, number: int) -> str:
    lead = _PREFIXES[kind]
    return f"{kind}_{lead}{_base62(number, _LENGTH - len(lead))}"


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of ``parts`` that is stable across processes (unlike ``hash()``)."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(repr(part).encode("utf-8"))
        digest.update(b"\x1f")
    return int.from_bytes(digest.digest(), "big")


def unit_interval(*parts: object) -> float:
    """A deterministic number in [0, 1) derived from ``parts``."""
    return stable_hash(*parts) / 2.0**64


def derived_id(kind: str, *parts: object) -> str:
    """An id determined by ``parts`` (same parts, same id)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=24).digest()
    return _compose(kind, int.from_bytes(digest, "big"))


def derived_uuid(*parts: object) -> str:
    """A UUID determined by ``parts`` (for ids the API writes as UUIDs, e.g. organisation ids)."""
    return str(uuid.UUID(bytes=hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=16).digest()))


class IdFactory:
    """Seeded source of fresh ids."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"ids:{seed}")

    def new(self, kind: str) -> str:
        """A fresh id of ``kind`` (``msgbatch``, ``msg``, ``req``)."""
        return _compose(kind, self._rng.getrandbits(160))
