"""Generate the example workload: prompts, a policy document and a few thousand tasks of four types.

Deterministic (fixed seed), so the demo's figures are reproducible. Run from the repo root:

    python examples/generate.py            # writes examples/prompts/ and examples/tasks/

The texts are synthetic but shaped like the real thing: a triage guide long enough to pass Haiku's
4,096-token minimum cacheable prefix, a policy document shared by every judgement task, tickets that
mention their category, strings with dates in several formats, and conversations long enough for
context trimming to matter.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
LABELS = ["billing", "bug", "feature_request", "account", "shipping", "other"]
PRODUCTS = ["Pylon Desk", "Pylon Sync", "Pylon Mobile", "Pylon Analytics", "Pylon API"]
ISSUES = {
    "billing": [
        "I was charged twice for my billing cycle",
        "the invoice shows the wrong billing amount",
        "please refund the billing error on my card",
    ],
    "bug": [
        "the export button crashes with a bug",
        "there is a bug: saving a draft loses the attachments",
        "a bug makes the dashboard blank after login",
    ],
    "feature_request": [
        "feature request: dark mode for the editor",
        "could you add a feature request for bulk tags",
        "feature request to export reports as CSV",
    ],
    "account": [
        "I cannot reset the password on my account",
        "please merge my two account profiles",
        "my account was locked after two attempts",
    ],
    "shipping": [
        "the shipping of my hardware key is late",
        "shipping label shows the wrong address",
        "no shipping update for ten days",
    ],
    "other": ["just wanted to say thanks", "who do I talk to about a partnership", "is the office open on Friday"],
}
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def triage_prompt(rng: random.Random) -> str:
    lines = [
        "You are the support triage agent for Pylonworks.",
        "Read one customer ticket and answer with exactly one label and nothing else.",
        "Labels: " + ", ".join(LABELS),
        "",
        "# Triage guide",
    ]
    for label in LABELS:
        lines.append(f"\n## {label}\n")
        lines.append(f"Use `{label}` when the customer's main request is about {label.replace('_', ' ')}.")
        for n in range(14):
            product = rng.choice(PRODUCTS)
            example = rng.choice(ISSUES[label])
            lines.append(
                f'Example {label}-{n + 1}: "On {product}, {example}; ticket {rng.randint(10000, 99999)}."'
                f" -> {label}. Rationale: the request concerns {label.replace('_', ' ')}, and"
                f" secondary mentions of other topics do not change the primary label."
            )
    lines.append("\nWhen several labels apply, choose the one the customer needs resolved first.")
    return "\n".join(lines) + "\n"


def policy_document(rng: random.Random) -> str:
    sections = []
    for n in range(1, 41):
        clauses = [
            f"{n}.{k} Refunds above {rng.choice([50, 100, 250, 500])} USD require a second approver when the"
            f" account is younger than {rng.choice([30, 60, 90])} days, unless the charge was a duplicate"
            f" confirmed by the billing ledger, in which case the agent approves directly and records the ledger"
            f" entry number in the case notes."
            for k in range(1, 5)
        ]
        sections.append(
            f"## Section {n}: {rng.choice(['Refunds', 'Credits', 'Chargebacks', 'Exceptions'])}\n" + "\n".join(clauses)
        )
    return "# Pylonworks refund and credit policy (v7)\n\n" + "\n\n".join(sections) + "\n"


def date_string(rng: random.Random) -> tuple[str, str | None]:
    y, m, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
    iso = f"{y:04d}-{m:02d}-{d:02d}"
    forms = [iso, f"{MONTHS[m - 1]} {d}, {y}", f"{d} {MONTHS[m - 1]} {y}", f"{m:02d}/{d:02d}/{y}"]
    if rng.random() < 0.1:
        return "Signed contract attached, no date on it.", None
    return f"Order placed {rng.choice(forms)} via the web shop.", iso


def conversation(rng: random.Random, turns: int) -> list[dict[str, str]]:
    label = rng.choice(LABELS)
    convo = [{"role": "user", "content": f"Hello, {rng.choice(ISSUES[label])}."}]
    for t in range(turns - 1):
        role = "assistant" if t % 2 == 0 else "user"
        text = (
            "Thanks, could you share your order number and the email on the account?"
            if role == "assistant"
            else f"Sure, it is {rng.randint(100000, 999999)} and the email is on file. {rng.choice(ISSUES[label])}."
        )
        convo.append({"role": role, "content": text})
    if convo[-1]["role"] != "user":
        convo.append({"role": "user", "content": "Can you write back with the next steps?"})
    return convo


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(seed: int = 7) -> None:
    rng = random.Random(seed)
    (HERE / "prompts").mkdir(exist_ok=True)
    (HERE / "prompts" / "triage.md").write_text(triage_prompt(rng), encoding="utf-8")
    (HERE / "prompts" / "policy.md").write_text(policy_document(rng), encoding="utf-8")
    triage = []
    for n in range(1500):
        label = rng.choice(LABELS)
        text = f"[{rng.choice(PRODUCTS)}] {rng.choice(ISSUES[label])}. Ticket {n}."
        triage.append({"key": f"triage-{n}", "payload": {"ticket_id": n, "text": text, "expected_label": label}})
    dates = []
    for n in range(800):
        text, iso = date_string(rng)
        dates.append({"key": f"date-{n}", "payload": {"text": text, "expected_date": iso}})
    drafts = []
    for n in range(400):
        drafts.append(
            {
                "key": f"draft-{n}",
                "payload": {"customer": f"customer-{n}", "conversation": conversation(rng, rng.randint(3, 21))},
            }
        )
    cases = []
    for n in range(300):
        amount = rng.choice([20, 75, 180, 320, 900])
        cases.append(
            {
                "key": f"case-{n}",
                "payload": {
                    "case_id": n,
                    "text": f"Customer requests a refund of {amount} USD; account age {rng.randint(5, 400)} days; "
                    f"duplicate charge confirmed: {rng.choice(['yes', 'no'])}.",
                },
            }
        )
    write_jsonl(HERE / "tasks" / "ticket_triage.jsonl", triage)
    write_jsonl(HERE / "tasks" / "date_extraction.jsonl", dates)
    write_jsonl(HERE / "tasks" / "reply_drafting.jsonl", drafts)
    write_jsonl(HERE / "tasks" / "policy_judgement.jsonl", cases)


if __name__ == "__main__":
    main()
