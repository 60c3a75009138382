"""What the emulated provider billed: one row per billed response.

Billed are succeeded batch results and real-time ``/v1/messages`` responses; errored, canceled and
expired batch requests and ``count_tokens`` calls are free, as on the real API. Tests compare the
orchestrator's own cost ledger against this one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from nightbatch.emulator.clock import format_rfc3339
from nightbatch.emulator.engine import Usage

__all__ = ["Ledger", "LedgerEntry"]

_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One billed response and its usage."""

    seq: int
    billed_at: float
    workspace_id: str
    model: str
    service_tier: str
    message_id: str
    batch_id: str | None
    custom_id: str | None
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``billed_at`` as RFC 3339)."""
        data = asdict(self)
        data["billed_at"] = format_rfc3339(self.billed_at)
        return data


class Ledger:
    """Append-only list of billed responses."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []

    def __len__(self) -> int:
        return len(self._entries)

    def bill(
        self,
        workspace: str,
        model: str,
        usage: Usage,
        moment: float,
        message_id: str,
        batch_id: str | None = None,
        custom_id: str | None = None,
    ) -> LedgerEntry:
        """Append the row of one billed response (``seq`` is assigned here); one with a ``batch_id`` is batch tier."""
        entry = LedgerEntry(
            seq=len(self._entries) + 1,
            billed_at=moment,
            workspace_id=workspace,
            model=model,
            service_tier="batch" if batch_id else "standard",
            message_id=message_id,
            batch_id=batch_id,
            custom_id=custom_id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens,
            ephemeral_5m_input_tokens=usage.ephemeral_5m_input_tokens,
            ephemeral_1h_input_tokens=usage.ephemeral_1h_input_tokens,
        )
        self._entries.append(entry)
        return entry

    def entries(self, *, batch_id: str | None = None, workspace_id: str | None = None) -> list[LedgerEntry]:
        """Rows, optionally only one batch's or one workspace's."""
        return [
            e
            for e in self._entries
            if (batch_id is None or e.batch_id == batch_id) and (workspace_id is None or e.workspace_id == workspace_id)
        ]

    @staticmethod
    def totals(entries: list[LedgerEntry]) -> list[dict[str, Any]]:
        """Token sums per (model, service_tier)."""
        sums: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(("responses", *_TOKEN_FIELDS), 0)
        )
        for entry in entries:
            row = sums[(entry.model, entry.service_tier)]
            row["responses"] += 1
            for name in _TOKEN_FIELDS:
                row[name] += getattr(entry, name)
        return [{"model": m, "service_tier": t, **row} for (m, t), row in sorted(sums.items())]
