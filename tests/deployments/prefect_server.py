"""A real, temporary Prefect server and Prefect CLI subprocesses for the end-to-end deployment test.

Everything runs as ``python -m prefect ...`` under this interpreter with its own ``PREFECT_HOME`` and a
clean environment: no ``PREFECT_*`` or ``NIGHTBATCH_*`` variable and no API key leaks in from the shell or
from other tests. Each long-lived subprocess gets its own session (process group); stopping it signals that
group only, so the children it spawned (a worker's flow-run processes) go with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.deployments.support import ROOT

# Variables that must not reach the subprocesses from the environment pytest runs in.
_LEAKY_PREFIXES = ("PREFECT_", "NIGHTBATCH_")
_LEAKY_NAMES = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment(prefect_home: Path, **extra: str) -> dict[str, str]:
    """``os.environ`` without Prefect/nightbatch settings or API keys, plus an isolated Prefect home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES) and k not in _LEAKY_NAMES}
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_CLI_COLORS="false",
        PREFECT_CLI_WRAP_LINES="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@dataclass
class Background:
    """A subprocess in its own process group, with its output in a log file."""

    process: subprocess.Popen[bytes]
    log: Path

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_seconds: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL it after the grace period; never leaves the group behind."""
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break  # the whole group is gone
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            if sig is signal.SIGTERM:
                # The leader is gone; make sure nothing it started outlives it.
                with suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
            break


@contextmanager
def background(args: list[str], env: Mapping[str, str], log: Path, *, cwd: Path = ROOT) -> Iterator[Background]:
    """Run ``python -m prefect <args>`` in the background for the duration of the block."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", *args],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    job = Background(process, log)
    try:
        yield job
    finally:
        job.stop()


def prefect_cli(args: list[str], env: Mapping[str, str], *, cwd: Path = ROOT, timeout: float = 120) -> str:
    """Run ``python -m prefect <args>`` to completion; its output, or an AssertionError that shows it."""
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{output}"
    return output


@dataclass
class PrefectServer:
    url: str
    home: Path
    job: Background

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def environment(self, **extra: str) -> dict[str, str]:
        """The environment of a client (CLI, worker) of this server."""
        return clean_environment(self.home, PREFECT_API_URL=self.api_url, **extra)


@contextmanager
def prefect_server(workdir: Path, *, startup_timeout: float = 90) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free port, a temporary home and SQLite database; stopped afterwards."""
    home = workdir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = clean_environment(
        home, PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{workdir / 'prefect-server.db'}"
    )
    args = ["server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    with background(args, env, workdir / "prefect-server.log") as job:
        server = PrefectServer(f"http://127.0.0.1:{port}", home, job)
        deadline = time.monotonic() + startup_timeout
        while True:
            assert job.running(), f"prefect server exited {job.process.returncode}:\n{tail(job.log)}"
            try:
                if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"prefect server not healthy after {startup_timeout}s:\n{tail(job.log)}"
            time.sleep(0.2)
        yield server
