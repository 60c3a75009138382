"""Enqueue: a JSONL task file of a million tasks, streamed into the queue.

The file (written to a temporary folder first, not timed) alternates the two line shapes of a task file:
an envelope with an explicit key, ``{"key": "t-17", "payload": {...}}``, and a bare payload whose key is
derived from its content. Payloads look like the example triage tickets (about 150 bytes of JSON).

Measured: :func:`~nightbatch.queue.enqueue.enqueue_jsonl` on the whole file, in one transaction. The
baseline calls :func:`~nightbatch.queue.enqueue.enqueue` once per line (one transaction each), on a
sample of the file; its rate is applied to the whole file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from benchmarks._harness import Row, measure, postgres_server_url, run_child, scratch_database, scratch_folder

TASK_TYPE = "ticket_triage"
_PRODUCTS = ["Pylon Analytics", "Pylon Mobile", "Pylon Sync", "Pylon Cloud"]
_ASKS = [
    ("I was charged twice for my billing cycle", "billing"),
    ("the export button crashes the app", "bug"),
    ("please add a dark mode", "feature_request"),
    ("I cannot reset my password", "account"),
    ("my parcel has not arrived yet", "shipping"),
]


def write_task_file(path: Path, n: int) -> int:
    """``n`` task lines at ``path``; returns the file's size in bytes."""
    rng = random.Random(9)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            ask, label = rng.choice(_ASKS)
            payload = {"ticket_id": i, "text": f"[{rng.choice(_PRODUCTS)}] {ask}. Ticket {i}.", "expected_label": label}
            line = {"key": f"triage-{i}", "payload": payload} if i % 2 == 0 else payload
            out.write(json.dumps(line) + "\n")
    return path.stat().st_size


def case_nightbatch(backend: str, postgres_url: str | None, n: int) -> dict[str, Any]:
    from nightbatch.db import make_engine
    from nightbatch.queue.enqueue import enqueue_jsonl

    with scratch_folder() as folder, scratch_database(backend, folder, postgres_url) as url:
        path = folder / "tasks.jsonl"
        size = write_task_file(path, n)
        engine = make_engine(url)
        with measure() as m:
            report = enqueue_jsonl(engine, path, default_task_type=TASK_TYPE)
        engine.dispose()
    if report.inserted != n:
        raise AssertionError(f"{report.inserted} of {n} tasks inserted")
    return {"n": n, "seconds": m.seconds, "peak_bytes": m.peak_bytes, "file_bytes": size}


def case_baseline(backend: str, postgres_url: str | None, n: int) -> dict[str, Any]:
    from nightbatch.db import make_engine
    from nightbatch.queue.enqueue import enqueue

    with scratch_folder() as folder, scratch_database(backend, folder, postgres_url) as url:
        path = folder / "tasks.jsonl"
        write_task_file(path, n)
        engine = make_engine(url)
        with measure() as m, path.open(encoding="utf-8") as lines:
            for line in lines:
                obj = json.loads(line)
                payload, key = (obj["payload"], obj["key"]) if "payload" in obj else (obj, None)
                enqueue(engine, TASK_TYPE, payload, key=key, source=str(path))
        engine.dispose()
    return {"n": n, "seconds": m.seconds, "peak_bytes": m.peak_bytes}


def run(quick: bool = False) -> list[Row]:
    n = 100_000 if quick else 1_000_000
    sample = 2_000 if quick else 5_000
    postgres_url = postgres_server_url()
    rows = []
    for backend in ["sqlite"] + (["postgresql"] if postgres_url else []):
        base = run_child(case_baseline, backend=backend, postgres_url=postgres_url, n=sample)
        ours = run_child(case_nightbatch, backend=backend, postgres_url=postgres_url, n=n)
        notes = [
            f"file {ours['file_bytes'] / 2**20:,.0f} MiB",
            f"baseline: {sample:,}-line sample, extrapolated",
            f"{ours['seconds']:.1f} s",
        ]
        rows.append(Row("enqueue", f"{backend}: JSONL file", n, "tasks/s", n / ours["seconds"],
                        base["n"] / base["seconds"], ours["peak_bytes"], notes))  # fmt: skip
    return rows
