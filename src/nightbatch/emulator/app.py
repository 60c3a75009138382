"""The HTTP surface: the Anthropic Messages, Message Batches and token-counting routes.

Every API call goes through :meth:`ApiApp.call`: a ``req_...`` id (``request-id`` header and
``request_id`` in error bodies), authentication (``x-api-key`` or ``Authorization: Bearer``; the
key names the workspace), the ``anthropic-version`` check, endpoint faults, the handler, the
request log and one debug log line. Bodies are size-checked from ``Content-Length`` before they
are read and counted while streaming otherwise (413 ``request_too_large``). Results stream as
JSONL, rendered a chunk at a time. Admin routes (``/_emulator/...``) come from
:mod:`nightbatch.emulator.admin`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from nightbatch import fastjson
from nightbatch.emulator.admin import admin_routes
from nightbatch.emulator.batches import Batch
from nightbatch.emulator.clock import format_rfc3339
from nightbatch.emulator.errors import ApiError, error_body, invalid_field, invalid_request, not_found_message
from nightbatch.emulator.faults import FaultRule
from nightbatch.emulator.ids import derived_id, derived_uuid
from nightbatch.emulator.render import batch_json
from nightbatch.emulator.state import EmulatorState

__all__ = ["DroppedConnection", "create_app"]

log = logging.getLogger("nightbatch.emulator")

_DRAIN_CAP = 64 * 1024 * 1024


class DroppedConnection(Exception):  # noqa: N818 - names the simulated event, not an error of ours
    """Raised mid-response to make the server cut the connection (a `drop` fault)."""


@dataclass(frozen=True)
class CallContext:
    """What a handler knows about the call it serves."""

    request_id: str
    workspace_id: str
    api_version: str | None
    base_url: str
    drop: FaultRule | None


Handler = Callable[[Request, CallContext], Awaitable[Response]]


def _api_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        authorization = request.headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            key = authorization[7:].strip()
    return key or None


async def _read_json(request: Request, limit: int) -> object:
    """The parsed body (413 over ``limit``)."""
    return (await _read_json_sized(request, limit))[0]


def _oversized_items(body: object, size: int, limit: int) -> frozenset[int]:
    """Positions of batch items whose ``params`` alone exceed the Messages limit ``limit``.

    Only measured when the whole body is over ``limit`` (otherwise no item can be), so the common case
    costs nothing. Unverified: how the real API treats a batch item over the Messages size limit; we make
    it an errored result (``invalid_request_error``: ``request_too_large`` is not a result error type).
    """
    if size <= limit or not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        return frozenset()
    found = set()
    for position, item in enumerate(body["requests"]):
        params = item.get("params") if isinstance(item, dict) else None
        if params is not None and len(fastjson.dumps(params)) > limit:
            found.add(position)
    return frozenset(found)


async def _read_json_sized(request: Request, limit: int) -> tuple[object, int]:
    too_large = ApiError("request_too_large", f"Request exceeds the maximum allowed number of bytes ({limit}).")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        drained = 0  # read and discard (not buffer) so the client can see the 413 before we close
        async for chunk in request.stream():
            drained += len(chunk)
            if drained > _DRAIN_CAP:
                break
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        return await run_in_threadpool(json.loads, body), len(body)
    except ValueError:
        raise invalid_request("The request body is not valid JSON.") from None


def _dropped(response: Response) -> Response:
    body = bytes(response.body)

    async def partial() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        raise DroppedConnection("connection dropped by an emulated fault")

    return StreamingResponse(partial(), status_code=response.status_code, media_type="application/json")


class ApiApp:
    """Route handlers bound to one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def _authenticate(self, request: Request) -> str:
        key = _api_key(request)
        if key is None:
            raise ApiError("authentication_error", "x-api-key header is required (or Authorization: Bearer <key>)")
        allowed = self.state.config.api_keys
        if allowed is not None and key not in allowed:
            raise ApiError("authentication_error", "invalid x-api-key")
        workspace = derived_id("wrkspc", key)
        asked = request.headers.get("anthropic-workspace-id")
        if asked and asked != workspace:
            raise ApiError("permission_error", f"this API key cannot act on workspace {asked}")
        return workspace

    async def call(self, request: Request, endpoint: str, handler: Handler) -> Response:
        """Run ``handler`` with auth, version check, faults, error bodies and logging around it."""
        state = self.state
        request_id = state.new_request_id()
        started = time.monotonic()
        fault: str | None = None
        try:
            workspace = self._authenticate(request)
            version = request.headers.get("anthropic-version")
            if version is None and state.config.require_version_header:
                raise invalid_field("anthropic-version", "header is required")
            triggered = state.faults.take(endpoint)
            if triggered.delay:
                fault = "slow"
                await asyncio.sleep(triggered.delay)
            if triggered.error is not None:
                rule = triggered.error
                fault = rule.kind
                raise ApiError(rule.kind, rule.error_message(), headers=rule.headers())
            base_url = f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"
            context = CallContext(request_id, workspace, version, base_url, triggered.drop)
            response = await handler(request, context)
            if triggered.drop is not None:
                fault = "drop"
                if endpoint != "batch_results":
                    response = _dropped(response)
        except ApiError as exc:
            fault = fault or exc.fault
            response = JSONResponse(exc.body(request_id), status_code=exc.status, headers=exc.headers)
        except ClientDisconnect:
            # The client gave up (a timeout) before its body was read: nobody is left to answer, and a
            # traceback in the log would only be noise. Recorded as nginx's 499.
            response = Response(status_code=499)
        response.headers["request-id"] = request_id
        response.headers["anthropic-organization-id"] = derived_uuid("org", _api_key(request) or "")
        self._record(request, endpoint, response.status_code, request_id, fault, started)
        if state.config.persist_path is not None:
            await run_in_threadpool(state.maybe_persist)
        return response

    def _record(
        self, request: Request, endpoint: str, status: int, request_id: str, fault: str | None, started: float
    ) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        with self.state.lock:
            self.state.counters[f"endpoint:{endpoint}"] += 1
            self.state.request_log.append(
                {
                    "request_id": request_id,
                    "method": request.method,
                    "path": request.url.path,
                    "endpoint": endpoint,
                    "status": status,
                    "fault": fault,
                    "retry_count": request.headers.get("x-stainless-retry-count"),
                    "real_time": time.time(),
                    "sim_time": format_rfc3339(self.state.synced_to),
                    "duration_ms": round(elapsed_ms, 3),
                }
            )
        log.debug(
            "%s %s -> %d %s(%.1f ms)",
            request.method,
            request.url.path,
            status,
            f"[{fault}] " if fault else "",
            elapsed_ms,
        )

    # ------------------------------------------------------------------ handlers
    async def messages(self, request: Request, ctx: CallContext) -> Response:
        body = await _read_json(request, self.state.config.max_request_bytes)
        message = await run_in_threadpool(self.state.create_message, ctx.workspace_id, body, ctx.api_version)
        return JSONResponse(message)

    async def count_tokens(self, request: Request, ctx: CallContext) -> Response:
        body = await _read_json(request, self.state.config.max_request_bytes)
        return JSONResponse(await run_in_threadpool(self.state.count_tokens, body, ctx.api_version))

    def _batch(self, ctx: CallContext, batch: Batch) -> JSONResponse:
        return JSONResponse(batch_json(batch, now=self.state.synced_to, base_url=ctx.base_url))

    async def batch_create(self, request: Request, ctx: CallContext) -> Response:
        config = self.state.config
        body, size = await _read_json_sized(request, config.max_batch_bytes)
        oversized = await run_in_threadpool(_oversized_items, body, size, config.max_request_bytes)
        batch = await run_in_threadpool(
            lambda: self.state.create_batch(ctx.workspace_id, body, ctx.api_version, oversized=oversized)
        )
        self.state.faults.note_created(batch.id, self.state.synced_to)
        return self._batch(ctx, batch)

    def _fresh_404(self, batch_id: str) -> None:
        """The transient 404 of a just-created batch (fault ``not_found_after_create``)."""
        if self.state.faults.hides_fresh_batch(batch_id, self.state.sync()):
            raise ApiError("not_found_error", not_found_message(batch_id), fault="fresh_404")

    async def batch_retrieve(self, request: Request, ctx: CallContext) -> Response:
        batch_id = request.path_params["batch_id"]
        await run_in_threadpool(self._fresh_404, batch_id)
        batch = await run_in_threadpool(self.state.get_batch, ctx.workspace_id, batch_id)
        return self._batch(ctx, batch)

    async def batch_cancel(self, request: Request, ctx: CallContext) -> Response:
        batch = await run_in_threadpool(self.state.cancel_batch, ctx.workspace_id, request.path_params["batch_id"])
        return self._batch(ctx, batch)

    async def batch_delete(self, request: Request, ctx: CallContext) -> Response:
        deleted = await run_in_threadpool(self.state.delete_batch, ctx.workspace_id, request.path_params["batch_id"])
        return JSONResponse(deleted)

    async def batch_list(self, request: Request, ctx: CallContext) -> Response:
        query = request.query_params
        raw_limit = query.get("limit", "20")
        if not raw_limit.lstrip("-").isdigit():
            raise invalid_field("limit", f"Input should be a valid integer, got {raw_limit!r}")
        batches, more = await run_in_threadpool(
            lambda: self.state.list_batches(
                ctx.workspace_id, after_id=query.get("after_id"), before_id=query.get("before_id"), limit=int(raw_limit)
            )
        )
        now = self.state.synced_to
        data = [batch_json(b, now=now, base_url=ctx.base_url) for b in batches]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return JSONResponse({"data": data, "has_more": more, "first_id": first, "last_id": last})

    async def batch_results(self, request: Request, ctx: CallContext) -> Response:
        batch_id = request.path_params["batch_id"]
        await run_in_threadpool(self._fresh_404, batch_id)
        batch, order = await run_in_threadpool(self.state.result_order, ctx.workspace_id, batch_id)
        drop = ctx.drop
        chunks = self.state.result_chunks(batch, order, limit=None if drop is None else drop.after_lines)

        async def stream() -> AsyncIterator[bytes]:
            async for chunk in iterate_in_threadpool(chunks):
                yield chunk
            if drop is not None:
                raise DroppedConnection(
                    f"results of {batch_id} cut after {drop.after_lines} lines by an emulated fault"
                )

        return StreamingResponse(stream(), media_type="application/binary")

    def routes(self) -> list[Route]:
        """The /v1 routes."""
        table: list[tuple[str, str, str, Handler]] = [
            ("/v1/messages", "POST", "messages", self.messages),
            ("/v1/messages/count_tokens", "POST", "count_tokens", self.count_tokens),
            ("/v1/messages/batches", "POST", "batch_create", self.batch_create),
            ("/v1/messages/batches", "GET", "batch_list", self.batch_list),
            ("/v1/messages/batches/{batch_id}", "GET", "batch_retrieve", self.batch_retrieve),
            ("/v1/messages/batches/{batch_id}", "DELETE", "batch_delete", self.batch_delete),
            ("/v1/messages/batches/{batch_id}/cancel", "POST", "batch_cancel", self.batch_cancel),
            ("/v1/messages/batches/{batch_id}/results", "GET", "batch_results", self.batch_results),
        ]
        return [self._route(path, method, endpoint, handler) for path, method, endpoint, handler in table]

    def _route(self, path: str, method: str, endpoint: str, handler: Handler) -> Route:
        async def serve(request: Request) -> Response:
            return await self.call(request, endpoint, handler)

        return Route(path, serve, methods=[method], name=endpoint)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    kind = "not_found_error" if status in (404, 405) else "invalid_request_error"
    message = "Not Found" if status == 404 else f"{request.method} is not allowed on {request.url.path}"
    return JSONResponse(error_body(kind, message, None), status_code=404 if status == 405 else status)


def create_app(state: EmulatorState) -> Starlette:
    """The ASGI app serving ``state``."""
    api = ApiApp(state)
    return Starlette(
        routes=[*api.routes(), *admin_routes(state)],
        exception_handlers={404: _not_found, 405: _not_found},
    )
