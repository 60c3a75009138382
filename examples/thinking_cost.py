"""What thinking would have cost on the demo run had it been left on (the README's figure).

The 5.x models think unless told not to; thinking is billed as output and counts toward max_tokens. This
reads the demo's ledger (`make run` leaves it in .nightbatch/demo/) and, for each task type × model of the
run's task responses, prices the thinking the run did NOT pay: for a type sent with thinking disabled, the
tokens it would have thought at the model's default (adaptive) setting; for a type that thinks, whatever the
ledger did not record. Thinking tokens per response: the ledger's own mean where it has some, else the
stated default (nightbatch.thinking.DEFAULT_THINKING_TOKENS, or --tokens). Batch output prices, exact.

    .venv/bin/python examples/thinking_cost.py [--config examples/nightbatch.toml] [--tokens 600]

Left uncapped on purpose: with max_tokens as configured (8 for triage), thinking would leave no room for
the answer; this prices the thinking a type would do with room for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import col

from nightbatch.catalog import model_info
from nightbatch.db.engine import make_engine
from nightbatch.db.models import Task, UsagePurpose, UsageRecord
from nightbatch.pricing import Usage, load_price_table, price_usage, pusd_to_usd
from nightbatch.tasktypes import load_task_types
from nightbatch.thinking import DEFAULT_THINKING_TOKENS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("examples/nightbatch.toml"))
    parser.add_argument("--db", default=f"sqlite:///{Path('.nightbatch/demo/nightbatch.db').resolve()}")
    parser.add_argument("--tokens", type=int, default=DEFAULT_THINKING_TOKENS)
    args = parser.parse_args()
    registry, prices, engine = load_task_types(args.config), load_price_table(), make_engine(args.db)
    query = (
        select(
            col(Task.task_type),
            col(UsageRecord.model),
            func.count(),
            func.sum(col(UsageRecord.thinking_tokens)),
            func.max(col(UsageRecord.billed_at)),
        )
        .join(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(col(UsageRecord.purpose).in_([UsagePurpose.TASK, UsagePurpose.SHADOW]))
        .group_by(col(Task.task_type), col(UsageRecord.model))
        .order_by(col(Task.task_type), col(UsageRecord.model))
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    disabled_total = on_total = 0
    print(f"{'task type':<18} {'model':<20} {'responses':>9} {'setting':>9} {'thinking tok':>13} {'cost':>10}")
    for task_type, model, responses, recorded, billed_at in rows:
        if not model_info(model).thinks_by_default:
            continue
        setting = registry.get(task_type).thinking if task_type in registry else None
        label = "default" if setting is None else setting if isinstance(setting, str) else "budget"
        per_response = (recorded or 0) // responses if recorded else args.tokens
        # Where thinking ran, the ledger has it all: nothing is missing (never negative from the rounding).
        expected = per_response * responses
        missing = expected if label == "disabled" else max(0, expected - (recorded or 0))
        cost = price_usage(
            prices, model, Usage(output_tokens=missing), "batch", billed_at.date() if billed_at else None
        )
        if label == "disabled":
            disabled_total += cost.total_pusd
        else:
            on_total += cost.total_pusd
        print(f"{task_type:<18} {model:<20} {responses:>9,} {label:>9} {missing:>13,} ${cost.usd:>9.4f}")
    print(f"thinking left on where the config disables it: ${pusd_to_usd(disabled_total):.4f}")
    print(f"thinking the config allows but the ledger did not record: ${pusd_to_usd(on_total):.4f}")
    print(f"(at {args.tokens:,} thinking tokens per response where the ledger has no figure)")


if __name__ == "__main__":
    main()
