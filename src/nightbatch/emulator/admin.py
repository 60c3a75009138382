"""The emulator's control surface under ``/_emulator/`` (not part of the Anthropic API; no auth).

=====================================  =======================================================
``GET  /_emulator/health``             ``{"ok": true}`` once the server answers
``POST /_emulator/reset``              forget everything; optional body ``{"config": {...}}``
``GET|PATCH /_emulator/config``        read / change config fields
``GET  /_emulator/clock``              simulated now and time_scale
``POST /_emulator/clock/advance``      ``{"seconds": 3600}``
``POST /_emulator/clock/time_scale``   ``{"time_scale": 60}``
``GET|POST|DELETE /_emulator/faults``  list / arm a :class:`FaultRule` / clear all faults
``POST /_emulator/faults/requests``    arm a batch :class:`RequestFault`
``POST /_emulator/faults/results``     arm a result-line :class:`ResultFault` (corrupted lines)
``POST /_emulator/faults/fresh_404``   ``{"seconds": 5}``: new batches answer 404 that long after create
``GET  /_emulator/ledger``             billed responses (``?batch_id=``, ``?workspace_id=``) + totals
``GET  /_emulator/stats``              counters: batches by status, calls per endpoint, cache
``GET  /_emulator/requests``           recent request log (``?limit=``)
=====================================  =======================================================
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nightbatch.emulator.clock import format_rfc3339
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.errors import error_body
from nightbatch.emulator.faults import FaultRule, RequestFault, ResultFault
from nightbatch.emulator.state import EmulatorState

__all__ = ["admin_routes", "stats"]


def stats(state: EmulatorState) -> dict[str, Any]:
    """A summary of what the emulator has seen and holds."""
    with state.lock:
        now = state.sync()
        statuses = Counter(batch.status for batch in state.batches.values())
        calls = {key.split(":", 1)[1]: n for key, n in state.counters.items() if key.startswith("endpoint:")}
        return {
            "now": format_rfc3339(now),
            "time_scale": state.clock.time_scale,
            "batches": dict(statuses),
            "batch_requests": sum(len(batch.requests) for batch in state.batches.values()),
            "calls": calls,
            "cache": {
                "entries": len(state.cache.entries),
                "entries_by_store": dict(Counter(store for _, store, _ in state.cache.entries)),
                "reads": state.cache.reads,
                "writes": state.cache.writes,
            },
            "ledger": {"responses": len(state.ledger), "totals": state.ledger.totals(state.ledger.entries())},
            "faults": state.faults.snapshot(),
        }


def clock_json(state: EmulatorState) -> dict[str, Any]:
    """Simulated now and speed."""
    now = state.sync()
    return {"now": format_rfc3339(now), "now_epoch": now, "time_scale": state.clock.time_scale}


def admin_routes(state: EmulatorState) -> list[Route]:
    """The ``/_emulator`` routes for ``state``."""

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        data = json.loads(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def guarded(handler: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return JSONResponse(await handler(request))
            except (KeyError, ValueError, ValidationError, TypeError) as exc:
                return JSONResponse(error_body("invalid_request_error", str(exc), None), status_code=400)

        return run

    async def health(request: Request) -> Any:
        return {"ok": True}

    async def reset(request: Request) -> Any:
        overrides = (await body(request)).get("config")
        config = None if overrides is None else EmulatorConfig.model_validate(overrides)
        state.reset(config)
        return {"ok": True, "config": state.config.model_dump(mode="json")}

    async def config(request: Request) -> Any:
        if request.method == "PATCH":
            state.configure(**(await body(request)))
        return state.config.model_dump(mode="json")

    async def clock(request: Request) -> Any:
        return clock_json(state)

    async def advance(request: Request) -> Any:
        state.clock.advance(float((await body(request))["seconds"]))
        return clock_json(state)

    async def time_scale(request: Request) -> Any:
        state.configure(time_scale=float((await body(request))["time_scale"]))
        return clock_json(state)

    async def faults(request: Request) -> Any:
        if request.method == "POST":
            state.faults.add(FaultRule.model_validate(await body(request)))
        elif request.method == "DELETE":
            state.faults.clear()
        return state.faults.snapshot()

    async def request_faults(request: Request) -> Any:
        state.faults.add_request_fault(RequestFault.model_validate(await body(request)))
        return state.faults.snapshot()

    async def fresh_404(request: Request) -> Any:
        seconds = (await body(request)).get("seconds", 5.0)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError("seconds must be a non-negative number")
        state.faults.not_found_after_create(float(seconds))
        return state.faults.snapshot()

    async def result_faults(request: Request) -> Any:
        state.faults.add_result_fault(ResultFault.model_validate(await body(request)))
        return state.faults.snapshot()

    async def ledger(request: Request) -> Any:
        with state.lock:
            state.sync()
            query = request.query_params
            entries = state.ledger.entries(batch_id=query.get("batch_id"), workspace_id=query.get("workspace_id"))
            return {"entries": [e.to_dict() for e in entries], "totals": state.ledger.totals(entries)}

    async def stats_route(request: Request) -> Any:
        return stats(state)

    async def requests(request: Request) -> Any:
        limit = int(request.query_params.get("limit", "1000"))
        with state.lock:
            return {"requests": list(state.request_log)[-limit:] if limit > 0 else []}

    table: list[tuple[str, list[str], Callable[[Request], Awaitable[Any]]]] = [
        ("/_emulator/health", ["GET"], health),
        ("/_emulator/reset", ["POST"], reset),
        ("/_emulator/config", ["GET", "PATCH"], config),
        ("/_emulator/clock", ["GET"], clock),
        ("/_emulator/clock/advance", ["POST"], advance),
        ("/_emulator/clock/time_scale", ["POST"], time_scale),
        ("/_emulator/faults", ["GET", "POST", "DELETE"], faults),
        ("/_emulator/faults/requests", ["POST"], request_faults),
        ("/_emulator/faults/results", ["POST"], result_faults),
        ("/_emulator/faults/fresh_404", ["POST"], fresh_404),
        ("/_emulator/ledger", ["GET"], ledger),
        ("/_emulator/stats", ["GET"], stats_route),
        ("/_emulator/requests", ["GET"], requests),
    ]
    return [Route(path, guarded(handler), methods=methods) for path, methods, handler in table]
