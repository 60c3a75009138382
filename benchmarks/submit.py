"""Submit: claim, build, pack and serialize queued tasks that share a 4k-token prefix, into batches at 256 MB.

One task type whose system prompt is about 4,500 tokens (over Haiku's 4,096-token cache minimum), and a
short task of its own per request. Measured: :func:`~nightbatch.queue.claim.claim`, routing and building
(:func:`~nightbatch.submit.plan.plan_requests`), the TTL decision and :func:`~nightbatch.submit.pack.pack`,
then every batch's create body serialized to the last byte (:meth:`PackedBatch.body_chunks`) and checked
against its ``payload_bytes``.

A second case sends one full batch (about 253 MB) to a local server that discards it: the SDK given the
request dicts (the baseline: it walks and serializes them all first), and ``ClaudeClient.create_batch(packed)``
as the submitter does it, the packed body streamed through the same SDK client with its exact length.

The baseline builds each request as a fresh dict (its own copy of the system block and cache marker),
serializes each whole request to learn its size, packs by those sizes, and serializes each batch body in
one piece, as handing the SDK a list of dicts does.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchmarks._harness import MiB, Row, measure, postgres_server_url, run_child, scratch_database, scratch_folder

MODEL = "claude-haiku-4-5"
TASK_TYPE = "bench_summary"
PREFIX_TOKENS = 4_500
MAX_BYTES = int(256 * MiB * 0.99)
_WORDS = ["the", "order", "ticket", "customer", "refund", "shipping", "policy", "account", "billing", "invoice"]


def _system() -> str:
    rng = random.Random(4)
    words = [rng.choice(_WORDS) for _ in range(PREFIX_TOKENS * 4 // 6)]
    return "You summarise support tickets for Pylonworks, following the guide below.\n\n" + " ".join(words)


def _task_type() -> Any:
    from nightbatch.tasktypes import TaskType

    return TaskType(
        name=TASK_TYPE, model=MODEL, max_tokens=300, system=_system(), template="Summarise this ticket:\n{text}"
    )


def _seed(engine: Any, n: int) -> None:
    from sqlalchemy import insert

    from nightbatch.db import Task, TaskStatus

    rng = random.Random(7)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for start in range(0, n, 10_000):
            rows = []
            for i in range(start, min(n, start + 10_000)):
                text = " ".join(rng.choice(_WORDS) for _ in range(100))
                rows.append({
                    "task_type": TASK_TYPE, "payload": {"text": f"Ticket {i}: {text}"}, "idempotency_key": f"s-{i}",
                    "status": TaskStatus.QUEUED, "attempts": 0, "priority": 0, "user_canceled": False,
                    "created_at": now, "updated_at": now,
                })  # fmt: skip
            conn.execute(insert(Task), rows)


def case_nightbatch(backend: str, postgres_url: str | None, n: int) -> dict[str, Any]:
    """claim -> plan_requests -> plan_group + pack -> body_chunks, as the submit step does them."""
    from nightbatch.build.cache_ttl import plan_group
    from nightbatch.build.requests import RequestBuilder
    from nightbatch.db import make_engine
    from nightbatch.pricing import load_price_table
    from nightbatch.queue.claim import claim
    from nightbatch.submit.pack import pack
    from nightbatch.submit.plan import PrefixSizer, plan_requests
    from nightbatch.tasktypes import TaskTypeRegistry

    registry, prices = TaskTypeRegistry([_task_type()]), load_price_table()
    with scratch_folder() as folder, scratch_database(backend, folder, postgres_url) as url:
        engine = make_engine(url)
        _seed(engine, n)
        sizer = PrefixSizer(None)
        with measure() as m:
            claimed = claim(engine, n, "bench", lease_seconds=3600)
            plan = plan_requests(claimed, registry, RequestBuilder())

            def ttl_for(key: tuple[str, str], members: list[Any]) -> Any:
                first = members[0]
                tokens = sizer.tokens(first.prefix)
                return plan_group(model=first.model, prices=prices, prefix_tokens=tokens, requests=len(members)).ttl

            packed = pack(plan.requests, ttl_for)
            payload = 0
            for batch in packed.batches:
                size = sum(len(chunk) for chunk in batch.body_chunks())
                if size != batch.payload_bytes or size > MAX_BYTES:
                    raise AssertionError(f"a body of {size} bytes; pack said {batch.payload_bytes}")
                payload += size
        engine.dispose()
    built = sum(len(b.requests) for b in packed.batches)
    if built != n:
        raise AssertionError(f"{built} of {n} tasks packed")
    return {
        "n": n,
        "seconds": m.seconds,
        "peak_bytes": m.peak_bytes,
        "payload": payload,
        "batches": len(packed.batches),
    }


def case_baseline(backend: str, postgres_url: str | None, n: int) -> dict[str, Any]:
    """Fresh dicts per request, whole-request serialization to size them, whole-body serialization."""
    from nightbatch.build.template import render
    from nightbatch.db import make_engine
    from nightbatch.queue.claim import claim

    task_type = _task_type()
    with scratch_folder() as folder, scratch_database(backend, folder, postgres_url) as url:
        engine = make_engine(url)
        _seed(engine, n)
        with measure() as m:
            claimed = claim(engine, n, "bench", lease_seconds=3600)
            sized: list[tuple[dict[str, Any], int]] = []
            for task in claimed:
                marker = {"type": "ephemeral", "ttl": "1h"}
                system = [{"type": "text", "text": task_type.system, "cache_control": marker}]
                params = {
                    "model": task_type.model,
                    "max_tokens": task_type.max_tokens,
                    "system": system,
                    "messages": [{"role": "user", "content": render(task_type.template, task.payload)}],
                }
                entry = {"custom_id": f"t{task.id}-{task.attempts}", "params": params}
                sized.append((entry, len(json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode())))
            batches: list[list[dict[str, Any]]] = [[]]
            used = len(b'{"requests":[]}')
            for entry, size in sized:
                if batches[-1] and used + 1 + size > MAX_BYTES:
                    batches.append([])
                    used = len(b'{"requests":[]}')
                used += size + (1 if batches[-1] else 0)
                batches[-1].append(entry)
            payload = 0
            for batch in batches:
                body = json.dumps({"requests": batch}, separators=(",", ":"), ensure_ascii=False).encode()
                payload += len(body)
                del body
        engine.dispose()
    return {"n": n, "seconds": m.seconds, "peak_bytes": m.peak_bytes, "payload": payload, "batches": len(batches)}


class _Discard(BaseHTTPRequestHandler):
    """Reads a request body, drops it, answers with a MessageBatch."""

    def do_POST(self) -> None:
        left = int(self.headers.get("content-length") or 0)
        while left:
            left -= len(self.rfile.read(min(left, MiB)))
        counts = {"processing": 1, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        answer = json.dumps({
            "id": "msgbatch_discarded", "type": "message_batch", "processing_status": "in_progress",
            "request_counts": counts, "ended_at": None, "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-02T00:00:00Z", "archived_at": None, "cancel_initiated_at": None, "results_url": None,
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def case_send(streamed: bool) -> dict[str, Any]:
    """One full batch sent to a discarding server: the SDK's way, or streamed from ``body_chunks``."""
    import anthropic

    from nightbatch.build.requests import RequestBuilder
    from nightbatch.claude.client import ClaudeClient
    from nightbatch.submit.pack import pack

    task_type, builder = _task_type(), RequestBuilder()
    rng = random.Random(7)
    requests = [
        builder.build(i, 1, task_type, MODEL, {"text": " ".join(rng.choice(_WORDS) for _ in range(100))})
        for i in range(14_000)
    ]
    batch = pack(requests, lambda key, members: "1h").batches[0]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    sdk = anthropic.Anthropic(api_key="bench", base_url=url, max_retries=0, timeout=600)
    client = ClaudeClient(api_key="bench", base_url=url, timeout=600)
    with measure() as m:
        if streamed:
            client.create_batch(batch)  # what the submitter does: the packed body, streamed through the SDK
        else:
            sdk.messages.batches.create(requests=batch.entries())  # type: ignore[arg-type]
    server.shutdown()
    sdk.close()
    client.close()
    return {"n": len(batch.requests), "seconds": m.seconds, "peak_bytes": m.peak_bytes, "payload": batch.payload_bytes}


def run(quick: bool = False) -> list[Row]:
    n = 20_000 if quick else 100_000
    postgres_url = postgres_server_url()
    rows = []
    for backend in ["sqlite"] + (["postgresql"] if postgres_url else []):
        base = run_child(case_baseline, backend=backend, postgres_url=postgres_url, n=n)
        ours = run_child(case_nightbatch, backend=backend, postgres_url=postgres_url, n=n)
        notes = [
            f"payload {ours['payload'] / MiB:,.0f} MiB in {ours['batches']} batches",
            f"peak = {ours['peak_bytes'] / ours['payload']:.0%} of payload (baseline "
            f"{base['peak_bytes'] / MiB:,.0f} MiB, {base['peak_bytes'] / base['payload']:.0%})",
            f"{ours['seconds']:.1f} s",
        ]
        rate, base_rate = n / ours["seconds"], n / base["seconds"]
        rows.append(Row("submit", f"{backend}: claim+build+pack+serialize", n, "tasks/s", rate, base_rate,
                        ours["peak_bytes"], notes))  # fmt: skip
    sdk, streamed = run_child(case_send, streamed=False), run_child(case_send, streamed=True)
    notes = [
        f"{streamed['payload'] / MiB:,.0f} MiB body; baseline = the SDK given dicts "
        f"(peak {sdk['peak_bytes'] / MiB:,.0f} MiB); nightbatch = ClaudeClient.create_batch(packed), streamed",
        f"{streamed['seconds']:.2f} s vs {sdk['seconds']:.2f} s",
    ]
    rows.append(Row("submit", "send one batch (local discard server)", streamed["n"], "MiB/s",
                    streamed["payload"] / MiB / streamed["seconds"], sdk["payload"] / MiB / sdk["seconds"],
                    streamed["peak_bytes"], notes))  # fmt: skip
    return rows
