"""``python -m benchmarks [--quick] [--only ingest,submit,enqueue,claim,cost,chained,backfill]``: run, print, save."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import backfill, claim, cost, enqueue, ingest, submit
from benchmarks._harness import Row, machine, markdown_table, postgres_server_url
from nightbatch.db import redact_url

BENCHMARKS: dict[str, Callable[..., list[Any]]] = {
    "ingest": ingest.run,
    "submit": submit.run,
    "enqueue": enqueue.run,
    "claim": claim.run,
    "cost": cost.run,
    "chained": cost.run_chained,
    "backfill": backfill.run,
}
RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a tenth), for a smoke run")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset of: %(default)s")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    started = time.perf_counter()
    rows: list[Row] = []
    costs: list[cost.CostRow] = []
    chains: list[cost.ChainRow] = []
    for name in chosen:
        print(f"running {name}{' (quick)' if args.quick else ''} ...", file=sys.stderr, flush=True)
        for row in BENCHMARKS[name](quick=args.quick):
            if isinstance(row, cost.ChainRow):
                chains.append(row)
            else:
                (costs if isinstance(row, cost.CostRow) else rows).append(row)
    elapsed = time.perf_counter() - started
    server = postgres_server_url()
    postgres = f"PostgreSQL at {redact_url(server)}" if server else "no PostgreSQL reachable"
    report = "\n".join([
        f"# nightbatch benchmarks{' (quick)' if args.quick else ''}",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; {postgres}. Whole run: {elapsed:.0f} s.",
        "",
        *([markdown_table(rows), "",
           "Peak memory: the highest resident set of the measuring process above where it stood when the",
           "measured section began (Linux VmHWM, reset at that point). See docs/benchmarks.md.", ""] if rows else []),
        *(["## Cost", "", cost.markdown_table(costs), "",
           "Costs are the emulator's usage accounting (tokens, cache reads and writes) priced with the real price",
           "table: a simulated run, no real API call. Each level re-prices the same billed usage; see",
           "nightbatch.report.savings.", ""] if costs else []),
        *(["## Chained workload: cost per completed pipeline item", "", cost.chained_markdown_table(chains), "",
           "A pipeline item is a first-stage task with every stage task it set off; completed = all of them",
           "succeeded. Per completed item = everything the items cost / completed items (nightbatch.report.pipelines).",
           ""] if chains else []),
    ])  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    print(f"(saved to {RESULTS})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
