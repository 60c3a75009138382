"""The backfill benchmark's end-of-run check: nothing claimed, sent, billed or ingested twice.

Three records are compared: the database (:func:`nightbatch.db.audit.audit_queue`), the object store (each
task in one manifest line and one output line) and the emulator's own ledger (each request billed once, at
the picodollars our ledger booked), plus the workers' own accounts of their claims and ingests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any


def _emulator_ledger(base_url: str, provider_ids: list[str]) -> Iterator[dict[str, Any]]:
    import httpx2

    for provider_id in provider_ids:
        answer = httpx2.get(f"{base_url}/_emulator/ledger", params={"batch_id": provider_id}, timeout=600)
        answer.raise_for_status()
        yield from answer.json()["entries"]


def check(url: str, store_dir: str, base_url: str, tasks: int, workers: list[dict[str, Any]]) -> dict[str, Any]:
    """Nothing claimed, sent, billed or ingested twice (child process); the problems found, and counts."""
    from collections import Counter

    from sqlalchemy import func, select
    from sqlmodel import col

    from nightbatch import custom_ids
    from nightbatch.db import make_engine
    from nightbatch.db.audit import audit_queue, database_bytes
    from nightbatch.db.models import Batch, UsageRecord
    from nightbatch.pricing import Usage, load_price_table, price_usage
    from nightbatch.storage import open_store

    engine, store, prices = make_engine(url), open_store(store_dir), load_price_table()
    audit = audit_queue(engine)
    problems = list(audit.problems)
    # Each worker's own account: every claim ended sent, handed back or failed; batches ingested once each.
    claimed = sum(w["claimed"] for w in workers)
    accounted = sum(w["submitted"] + w["released"] + w["failed_before_sending"] for w in workers)
    if claimed != accounted:
        problems.append(f"{claimed:,} claims but {accounted:,} sent, handed back or failed: a claim was lost")
    sent = sum(w["submitted"] for w in workers)
    if sent != tasks:
        problems.append(f"{tasks:,} tasks but {sent:,} sent by the workers")
    ingested = Counter(b for w in workers for b in w["ingested"])
    problems += [f"batch {b} ingested {n} times by the workers" for b, n in ingested.items() if n > 1]
    with engine.connect() as conn:
        batches = dict(conn.execute(select(col(Batch.id), col(Batch.provider_batch_id)).where(
            col(Batch.purpose) == "task", col(Batch.provider_batch_id).is_not(None))).all())  # fmt: skip
        our_cost = conn.execute(select(func.coalesce(func.sum(col(UsageRecord.cost_pusd)), 0))).scalar_one()
        usage_rows = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
    problems += [f"batch {b} never ingested by a worker" for b in batches if b not in ingested]
    # The object store: each request in one manifest, each result in one output line (counts by task id).
    in_manifests: Counter[int] = Counter()
    for info in store.list("manifests/"):
        with store.open_read(info.key) as lines:
            for raw in lines:
                in_manifests[custom_ids.task_id(json.loads(raw)["custom_id"])] += 1
    in_outputs: Counter[int] = Counter()
    for info in store.list("outputs/"):
        with store.open_read(info.key) as lines:
            for raw in lines:
                in_outputs[int(json.loads(raw)["task_id"])] += 1
    problems += _duplicates(in_manifests, "sent in", "manifests") + _duplicates(in_outputs, "written to", "outputs")
    if len(in_manifests) != tasks or len(in_outputs) != tasks:
        problems.append(f"{tasks:,} tasks, {len(in_manifests):,} in manifests, {len(in_outputs):,} with an output")
    # The provider's ledger: each request billed once, and what it billed is what we booked.
    billed: Counter[str] = Counter()
    shapes: Counter[tuple[str, str, int, int, int, int, int]] = Counter()
    for entry in _emulator_ledger(base_url, sorted(batches.values())):
        billed[entry["custom_id"]] += 1
        shapes[(entry["model"], entry.get("service_tier") or "batch", entry["input_tokens"], entry["output_tokens"],
                entry.get("ephemeral_5m_input_tokens", 0), entry.get("ephemeral_1h_input_tokens", 0),
                entry.get("cache_read_input_tokens", 0))] += 1  # fmt: skip
    problems += [f"{c} billed {n} times by the provider" for c, n in billed.items() if n > 1][:20]
    if len(billed) != tasks or sum(billed.values()) != usage_rows:
        problems.append(f"{tasks:,} tasks, the provider billed {len(billed):,} requests ({sum(billed.values()):,} "
                        f"times), our ledger has {usage_rows:,} rows")  # fmt: skip
    theirs = 0
    for (model, tier, inp, out, w5, w1, read), n in shapes.items():
        usage = Usage(input_tokens=inp, output_tokens=out, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
                      cache_read_tokens=read)  # fmt: skip
        theirs += n * price_usage(prices, model, usage, "batch" if tier == "batch" else "standard").total_pusd
    if theirs != int(our_cost):
        problems.append(f"the provider billed {theirs} pUSD, our ledger says {our_cost} pUSD")
    size = database_bytes(engine)
    engine.dispose()
    return {"problems": problems, "tasks_by_status": audit.tasks_by_status, "batches": len(batches),
            "db_bytes": size, "cost_usd": float(our_cost) * 1e-12, "billed": sum(billed.values())}  # fmt: skip


def _duplicates(counts: Any, verb: str, where: str) -> list[str]:
    twice = [t for t, n in counts.items() if n > 1]
    return [f"{len(twice):,} task(s) {verb} more than one {where}, e.g. {twice[:5]}"] if twice else []
