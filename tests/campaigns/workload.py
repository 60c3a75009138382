"""The campaigns' workload: three small task types on two models, one with a cached prefix.

No quality checks, escalation or shadow sampling, so every task is billed at most once when all goes
well: any second bill the emulator records is a finding (unless it is reported as an orphan).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import Engine

from nightbatch.queue.enqueue import enqueue_jsonl

TASK_TYPES = ("triage", "dates", "drafts")

# Long enough to pass Haiku's minimum cacheable prefix (4,096 tokens at ~4 bytes a token).
_GUIDE = "\n".join(
    f"Rule {n}: a ticket that mentions invoices goes to the billing queue unless it names another product."
    for n in range(220)
)

CONFIG = f'''
[task_types.triage]
model = "claude-haiku-4-5"
max_tokens = 8
system = """Classify the ticket.
Labels: billing, bug, feature_request, account, other
{_GUIDE}"""
template = "Ticket: {{text}}"

[task_types.dates]
model = "claude-haiku-4-5"
max_tokens = 32
system = """Extract the date.
Output: JSON {{"date": "YYYY-MM-DD"}}"""
template = "{{text}}"
output = "json"

[task_types.drafts]
model = "claude-sonnet-4-6"
max_tokens = 40
system = "Draft a short, friendly reply."
template = "Reply to: {{text}}"
'''

_TEXTS = {
    "triage": "I was charged twice for my billing cycle, ticket {n}.",
    "dates": "The parcel left on 2026-03-{day:02d}, order {n}.",
    "drafts": "Where is my order {n}? It has been a week.",
}


def scale() -> float:
    """``NIGHTBATCH_CAMPAIGN_SCALE`` (default 0: the quick CI size; 1 is the full campaign)."""
    return float(os.environ.get("NIGHTBATCH_CAMPAIGN_SCALE", "0") or 0)


def write_config(folder: Path) -> Path:
    """The workload's task types (triage's prefix is worth caching: it goes through a pilot batch)."""
    path = folder / "campaign.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def task_lines(per_type: int, types: tuple[str, ...] = TASK_TYPES) -> list[str]:
    return [
        json.dumps({"task_type": t, "key": f"{t}-{n}", "payload": {"text": _TEXTS[t].format(n=n, day=n % 28 + 1)}})
        for t in types
        for n in range(per_type)
    ]


def enqueue_workload(engine: Engine, per_type: int, types: tuple[str, ...] = TASK_TYPES) -> int:
    """Queue ``per_type`` tasks of each type; returns how many were queued."""
    return enqueue_jsonl(engine, task_lines(per_type, types), source_name="campaign.jsonl").inserted
