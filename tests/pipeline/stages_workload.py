"""A chained workload for the pipeline-stage tests: classify -> draft, classify -> extract -> judge, and rerank.

``triage`` (Haiku) labels a ticket; ``reply`` (Sonnet) drafts a reply only for billing and account tickets;
``dates`` (Haiku) extracts the date of a billing ticket, and ``judge`` (Opus) rules on it when a date was
found: a three-stage chain. ``rank`` (Haiku) scores a question's candidate passages and ``answer`` (Sonnet)
receives the two best. Caching is off so that each round sends every queued task.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine

from nightbatch.queue.enqueue import enqueue_jsonl

CONFIG = '''
[task_types.triage]
model = "claude-haiku-4-5"
max_tokens = 8
system = """Classify the ticket.
Labels: billing, bug, feature_request, account, other"""
template = "Ticket: {text}"
cache = { mode = "off" }

[task_types.reply]
after = "triage"
when = 'output in ["billing", "account"]'
inputs = { text = "payload.text", label = "output" }
model = "claude-sonnet-4-6"
max_tokens = 40
system = "Draft a short, friendly reply."
template = "Reply to this {label} ticket: {text}"
cache = { mode = "off" }

[task_types.dates]
after = "triage"
when = 'output == "billing"'
model = "claude-haiku-4-5"
max_tokens = 32
system = """Extract the date.
Output: JSON {"date": "YYYY-MM-DD"}"""
template = "{text}"
output = "json"
cache = { mode = "off" }

[task_types.judge]
after = "dates"
when = "output.date != null"
inputs = { text = "payload.text", date = "output.date" }
model = "claude-opus-4-8"
max_tokens = 60
system = """Rule on the refund.
Verdict: approve|reject|escalate"""
template = "Charged on {date}: {text}"
output = "json"
cache = { mode = "off" }

[task_types.rank]
model = "claude-haiku-4-5"
max_tokens = 60
system = """Score each document for the question.
Output: JSON {"scores": [...]}"""
template = """Question: {question}
Documents:
{documents}"""
output = "json"
cache = { mode = "off" }

[task_types.answer]
after = "rank"
rerank = { top_k = 2 }
inputs = { question = "payload.question" }
model = "claude-sonnet-4-6"
max_tokens = 60
system = "Answer from the documents."
template = """{question}
{documents}"""
cache = { mode = "off" }
'''

TICKETS = {
    "billing-dated": "My billing statement shows a double charge on 2026-03-05, please refund it.",
    "billing-undated": "The billing page charged me twice this month.",
    "account": "I cannot log in to my account since yesterday.",
    "bug": "The export button crashes the app with a bug report.",
}
QUESTION = {
    "question": "How long does a refund take?",
    "documents": [
        "Shipping takes five days.",
        "A refund takes ten days to reach your card.",
        "Our office is closed on Sundays.",
        "How long a refund takes depends on the bank.",
    ],
}


def write_config(folder: Path) -> Path:
    path = folder / "stages.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def task_lines(copies: int = 1) -> list[str]:
    lines = [
        json.dumps({"task_type": "triage", "key": f"{name}-{n}", "payload": {"text": text.replace(".", f" #{n}.")}})
        for n in range(copies)
        for name, text in TICKETS.items()
    ]
    lines.append(json.dumps({"task_type": "rank", "key": "question-0", "payload": QUESTION}))
    return lines


def enqueue_chains(engine: Engine, copies: int = 1) -> int:
    return enqueue_jsonl(engine, task_lines(copies), source_name="stages.jsonl").inserted
