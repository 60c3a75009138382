"""Claim: taking the next chunk of work from a deep queue (a million queued tasks, two task types).

The queue is filled from a task file (as the enqueue benchmark writes it; not timed), then one worker
claims ``CLAIMS`` chunks of ``CHUNK`` tasks, as the submit step does, restricted to one task type as a
pipeline's stage worker would be on every other claim. Measured: claims per second and peak memory.

The baseline is the same claim on the schema before migration 0008 (``downgrade`` to 0007, in the same
run): without the partial indexes in claim order, every claim sorts all the queued rows.
"""

from __future__ import annotations

from typing import Any

from benchmarks._harness import Row, measure, postgres_server_url, run_child, scratch_database, scratch_folder
from benchmarks.enqueue import TASK_TYPE, write_task_file

CHUNK = 1_000
CLAIMS = 20


def case(backend: str, postgres_url: str | None, n: int, revision: str | None) -> dict[str, Any]:
    from nightbatch.db import downgrade, make_engine
    from nightbatch.queue.claim import claim
    from nightbatch.queue.enqueue import enqueue_jsonl

    with scratch_folder() as folder, scratch_database(backend, folder, postgres_url) as url:
        if revision is not None:
            downgrade(url, revision)
        path = folder / "tasks.jsonl"
        write_task_file(path, n)
        engine = make_engine(url)
        enqueue_jsonl(engine, path, default_task_type=TASK_TYPE)
        claimed = 0
        with measure() as m:
            for i in range(CLAIMS):
                types = [TASK_TYPE] if i % 2 else None
                claimed += len(claim(engine, CHUNK, f"bench-{i}", task_types=types))
        engine.dispose()
    if claimed != CHUNK * CLAIMS:
        raise AssertionError(f"claimed {claimed} tasks, expected {CHUNK * CLAIMS}")
    return {"seconds": m.seconds, "peak_bytes": m.peak_bytes}


def run(quick: bool = False) -> list[Row]:
    n = 100_000 if quick else 1_000_000
    postgres_url = postgres_server_url()
    rows = []
    for backend in ["sqlite"] + (["postgresql"] if postgres_url else []):
        base = run_child(case, backend=backend, postgres_url=postgres_url, n=n, revision="0007")
        ours = run_child(case, backend=backend, postgres_url=postgres_url, n=n, revision=None)
        notes = [
            f"{CLAIMS} claims of {CHUNK:,} from {n:,} queued",
            f"{ours['seconds'] / CLAIMS * 1000:,.0f} ms per claim (baseline {base['seconds'] / CLAIMS * 1000:,.0f} ms)",
            "baseline: schema 0007, no claim-order index",
        ]
        rows.append(Row("claim", f"{backend}: deep queue", n, "claims/s", CLAIMS / ours["seconds"],
                        CLAIMS / base["seconds"], ours["peak_bytes"], notes))  # fmt: skip
    return rows
