"""Running the emulator: in the foreground (:func:`serve`) or in a background thread (:func:`run_emulator`).

The in-process runner binds 127.0.0.1 on a free port, starts uvicorn in a daemon thread, waits until
``/_emulator/health`` answers and hands back an :class:`EmulatorServer` whose ``base_url`` the real
SDK is pointed at. The same object is the Python control surface (clock, faults, ledger, reset),
mirroring the ``/_emulator`` HTTP endpoints.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from nightbatch.emulator.admin import stats
from nightbatch.emulator.app import DroppedConnection, create_app
from nightbatch.emulator.clock import SimClock
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.faults import Faults
from nightbatch.emulator.ledger import Ledger, LedgerEntry
from nightbatch.emulator.responders import Responder
from nightbatch.emulator.state import EmulatorState

__all__ = ["EmulatorServer", "LedgerView", "run_emulator", "serve"]

log = logging.getLogger("nightbatch.emulator")


class _HideDroppedConnections(logging.Filter):
    """Keep uvicorn from printing a traceback for connections we cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, DroppedConnection):
                return False
            error = error.__cause__ or error.__context__
        return True


def _quiet_uvicorn() -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDroppedConnections) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(_HideDroppedConnections())


def serve(
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    persist_path: Path | None = None,
    log_level: str = "info",
) -> None:
    """Serve the emulator in the foreground until interrupted (the ``nightbatch emulator serve`` command).

    ``log_level="debug"`` logs one line per API call. With ``persist_path`` state survives restarts.
    """
    config = config or EmulatorConfig()
    if persist_path is not None:
        config = config.model_copy(update={"persist_path": persist_path})
    state = EmulatorState(config)
    _quiet_uvicorn()
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(log_level.upper())
    log.info("nightbatch emulator on http://%s:%d (state %s)", host, port, config.persist_path or "in memory")
    try:
        uvicorn.run(create_app(state), host=host, port=port, log_level=log_level, access_log=False)
    finally:
        state.maybe_persist(force=True)


class LedgerView:
    """The billed ledger, brought up to date (simulated now) on every read."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def entries(self, *, batch_id: str | None = None, workspace_id: str | None = None) -> list[LedgerEntry]:
        """Billed responses, optionally of one batch / workspace."""
        with self._state.lock:
            self._state.sync()
            return self._state.ledger.entries(batch_id=batch_id, workspace_id=workspace_id)

    def totals(self, *, batch_id: str | None = None) -> list[dict[str, Any]]:
        """Token sums per (model, service_tier)."""
        return Ledger.totals(self.entries(batch_id=batch_id))

    def __len__(self) -> int:
        return len(self.entries())


class EmulatorServer:
    """An emulator served by uvicorn in a background thread, plus its Python control surface."""

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = EmulatorState(config)
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ control surface
    @property
    def config(self) -> EmulatorConfig:
        """The config in force."""
        return self.state.config

    @property
    def clock(self) -> SimClock:
        """The simulated clock (``advance(seconds)``, ``set_time_scale(x)``, ``now()``)."""
        return self.state.clock

    @property
    def faults(self) -> Faults:
        """Fault switches (``fail``, ``slow``, ``drop``, ``error_requests``, ``expire_requests``, ``clear``)."""
        return self.state.faults

    @property
    def ledger(self) -> LedgerView:
        """What the emulated provider billed."""
        return LedgerView(self.state)

    def reset(self, config: EmulatorConfig | None = None) -> None:
        """Forget all state, faults and custom responders; restart the clock (with ``config`` if given)."""
        self.state.reset(config)

    def configure(self, **updates: Any) -> EmulatorConfig:
        """Change config fields (e.g. ``batch_concurrency=1000``) until the next reset."""
        return self.state.configure(**updates)

    def advance(self, seconds: float) -> float:
        """Move simulated time forward; returns the new now (epoch seconds)."""
        return self.state.clock.advance(seconds)

    def stall_batch(self, batch_id: str, *, after_requests: int = 0) -> None:
        """Hold back ``batch_id``'s requests from position ``after_requests`` on, until resumed, canceled or expired."""
        self.state.stall_batch(batch_id, after_requests=after_requests)

    def resume_batch(self, batch_id: str) -> None:
        """Lift a stall; the held requests start with the next wave."""
        self.state.resume_batch(batch_id)

    def register_responder(self, responder: Responder, *, first: bool = True) -> None:
        """Add a custom responder (dropped again by :meth:`reset`)."""
        with self.state.lock:
            self.state.responders.register(responder, first=first)

    def stats(self) -> dict[str, Any]:
        """Counters (see ``GET /_emulator/stats``)."""
        return stats(self.state)

    def request_log(self) -> list[dict[str, Any]]:
        """Recent API calls, oldest first (method, path, endpoint, status, fault, retry_count, times)."""
        with self.state.lock:
            return list(self.state.request_log)

    # ------------------------------------------------------------------ running
    def start(self, timeout: float = 15.0) -> EmulatorServer:
        """Start serving; returns once ``/_emulator/health`` answers."""
        if self._thread is not None:
            return self
        _quiet_uvicorn()
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that say they are TCP,
        # and without it every keep-alive request waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._socket = sock
        port = sock.getsockname()[1]
        self.base_url = f"http://{self._host}:{port}"
        config = uvicorn.Config(
            create_app(self.state), log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.name = f"nightbatch-emulator-{port}"
        self._thread.start()
        self._wait_until_ready(timeout)
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.base_url}/_emulator/health", timeout=1.0) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or (self._thread is not None and not self._thread.is_alive()):
                self.stop()
                raise RuntimeError(f"the emulator did not answer on {self.base_url} within {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Shut down and save state if persistence is on."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self.state.maybe_persist(force=True)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[EmulatorServer]:
    """Serve an emulator in a background thread for the duration of the ``with`` block."""
    server = EmulatorServer(config, host=host, port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
