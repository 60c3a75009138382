"""What every benchmark shares: measured runs in fresh processes, scratch databases, the emulator, the table.

A measured run executes in a child process of its own (``python -m benchmarks._child``), so its peak
memory is its own: the high-water mark of its resident set (``VmHWM``, reset just before the measured
section) minus the resident set at that moment. Setup done in the child before :func:`measure` is not
counted, neither in time nor in memory.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from nightbatch.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
POSTGRES_URL_ENV = "NIGHTBATCH_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MiB = 1024 * 1024
# The key nightbatch sends when it has none (the emulator keeps batches per key, like workspaces).
API_KEY = "simulated-no-key"


# -- measuring --------------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


@dataclass
class Measurement:
    """Wall time and peak memory of one measured section."""

    seconds: float = 0.0
    peak_bytes: int = 0
    start_rss_bytes: int = 0


@contextlib.contextmanager
def measure() -> Iterator[Measurement]:
    """Time the block and record how far above its starting RSS the process went."""
    result = Measurement()
    exact = _reset_peak()
    start_rss = (_status_kib("VmRSS") or 0) * 1024
    if not exact:  # ru_maxrss is since process start: only an upper bound
        start_rss = 0
    result.start_rss_bytes = start_rss
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - started
        peak = _status_kib("VmHWM")
        peak_bytes = peak * 1024 if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result.peak_bytes = max(0, peak_bytes - start_rss)


def run_child(
    function: Callable[..., dict[str, Any]], env: dict[str, str] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Run ``function(**kwargs)`` (a module-level benchmark case) in a fresh interpreter; return its dict.

    ``env`` adds to the child's environment.
    """
    spec = json.dumps({"module": function.__module__, "function": function.__name__, "kwargs": kwargs})
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._child", spec],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark case {function.__module__}.{function.__name__}({kwargs}) failed")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def child_main(spec: str) -> None:
    """Entry point of :func:`run_child`'s interpreter: call the case, print its result as one JSON line."""
    parsed = json.loads(spec)
    function = getattr(importlib.import_module(parsed["module"]), parsed["function"])
    result = function(**parsed["kwargs"])
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# -- scratch databases ------------------------------------------------------------------------------


def postgres_server_url() -> str | None:
    """The PostgreSQL server to benchmark on, or None when it cannot be reached."""
    url = os.environ.get(POSTGRES_URL_ENV) or os.environ.get("NIGHTBATCH_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return None
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def scratch_database(backend: str, folder: Path, postgres_url: str | None = None) -> Iterator[str]:
    """A new, migrated database (a SQLite file in ``folder``, or ``nbbench_*`` on the server); dropped after."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'bench-{secrets.token_hex(3)}.db'}"
        upgrade(url)
        yield url
        return
    if postgres_url is None:
        raise ValueError("PostgreSQL benchmark without a server URL")
    admin = make_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"nbbench_{os.getpid()}_{secrets.token_hex(3)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="nightbatch-bench-") as folder:
        yield Path(folder)


# -- the emulator, in a process of its own ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorProcess:
    """The emulator served by a separate interpreter, as the real API would be: it does not share our GIL."""

    def __init__(self, **config: Any) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._config = {"time_scale": 0, **config}
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmulatorProcess:
        import httpx2

        code = (
            "import json, sys\n"
            "from nightbatch.emulator import EmulatorConfig, serve\n"
            "serve(EmulatorConfig(**json.loads(sys.argv[1])), port=int(sys.argv[2]), log_level='warning')\n"
        )
        self._process = subprocess.Popen([sys.executable, "-c", code, json.dumps(self._config), str(self.port)])
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{self.base_url}/_emulator/health", timeout=1).status_code == 200:
                    return self
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"the emulator did not start on {self.base_url}")
            time.sleep(0.05)

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # uvicorn waits for open responses; do not wait with it
                self._process.kill()
                self._process.wait()
            self._process = None

    def create_batch(self, requests: list[dict[str, Any]]) -> str:
        """Create a batch by posting the raw body; returns its id."""
        import httpx2

        headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
        body = json.dumps({"requests": requests}, separators=(",", ":")).encode()
        answer = httpx2.post(f"{self.base_url}/v1/messages/batches", content=body, headers=headers, timeout=600)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def advance(self, seconds: float) -> None:
        import httpx2

        httpx2.post(f"{self.base_url}/_emulator/clock/advance", json={"seconds": seconds}, timeout=600)


# -- reporting --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    case: str
    items: int
    unit: str
    rate: float
    baseline_rate: float | None = None
    peak_bytes: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline_rate else self.rate / self.baseline_rate


def _count(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | case | items | nightbatch | naive baseline | ratio | peak memory | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        baseline = "–" if row.baseline_rate is None else f"{row.baseline_rate:,.0f} {row.unit}"
        ratio = "–" if row.ratio is None else f"{row.ratio:,.1f}×"
        peak = "–" if row.peak_bytes is None else f"{row.peak_bytes / MiB:,.0f} MiB"
        lines.append(
            f"| {row.benchmark} | {row.case} | {_count(row.items)} | {row.rate:,.0f} {row.unit} | {baseline} | "
            f"{ratio} | {peak} | {'; '.join(row.notes)} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / MiB:.0f} GiB RAM"
    return f"{cpu}, {os.cpu_count()} cores{memory}; Python {platform.python_version()} on {platform.system()}"
