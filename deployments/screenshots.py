"""Look at a night in the real Prefect UI: server, served deployments, emulator, headless Chromium.

Not part of the test suite (it takes a few minutes). From the repository root, with Debian's Chromium
installed (``apt-get install -y chromium``)::

    .venv/bin/python -m deployments.screenshots            # PNGs in .nightbatch/screenshots/
    .venv/bin/python -m deployments.screenshots --out /tmp/shots --port 4300

It starts ``prefect server start`` on a free port (its own PREFECT_HOME), the local emulator, and
``python -m deployments.serve`` (the deployments of prefect.yaml), enqueues a few example tasks plus some
that fail before sending (a template field missing), runs the ``nightly-enrichment`` deployment with
``wait: true`` and the demo's timing (``nightbatch demo``: the emulator runs a simulated minute per real
second, a 30-minute deadline, 5-minute batches expected, so the cache planner sends pilots and the fan-outs
read), waits for it to end and screenshots the flow run (timeline and logs), the list of flow runs (their
names), its run summary (the whole page), the batch-progress table, the cost table and the
progress bar. Everything it started is stopped at the end, by process group.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FAILING = 6  # tasks whose payload lacks the template's field: they fail before sending
TIME_SCALE = 60.0  # simulated seconds per real second, as `nightbatch demo` runs the emulator
# Window per artifact: Chromium shoots the window, not the page, so the run summary gets a tall one.
ARTIFACT_SHOTS = {
    "run-summary": "1800,2400",
    "batch-progress": "1800,1000",
    "cost": "2000,1000",
    "progress": "1800,700",
}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=20000"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def background(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own process group, stopped (group and all) when the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                   start_new_session=True)  # fmt: skip
        try:
            yield process
        finally:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                try:
                    os.killpg(process.pid, sig)
                    process.wait(timeout=wait)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue


def wait_healthy(api: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"Prefect server at {api} did not become healthy in {seconds:.0f} s")


def prepare_tasks(folder: Path) -> None:
    """A few example tasks of every type."""
    folder.mkdir(parents=True)
    for source in sorted((EXAMPLES / "tasks").glob("*.jsonl")):
        lines = source.read_text(encoding="utf-8").splitlines()[:40]
        (folder / source.name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def queue_broken_tasks(database_url: str) -> None:
    """date_extraction tasks without their template's `text` field, queued past the enqueue-time check
    (as tasks queued before a template changed would be): they fail before sending."""
    from nightbatch.db.engine import make_engine
    from nightbatch.queue.enqueue import enqueue

    engine = make_engine(database_url)
    for n in range(FAILING):
        enqueue(engine, "date_extraction", {"note": f"no text field {n}"})
    engine.dispose()


def api_get(api: str, path: str) -> Any:
    return httpx.get(f"{api}{path}", timeout=10).json()


def api_post(api: str, path: str, body: dict[str, Any], attempts: int = 4) -> Any:
    # A busy server on two cores answers 503 now and then (seen on create_flow_run): try again shortly.
    for attempt in range(attempts):
        response = httpx.post(f"{api}{path}", json=body, timeout=30)
        if response.status_code < 500 or attempt == attempts - 1:
            break
        time.sleep(2 * (attempt + 1))
    response.raise_for_status()
    return response.json()


def wait_for_deployment(api: str, name: str, seconds: float = 240) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = api_post(api, "/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
        if found:
            return str(found[0]["id"])
        time.sleep(2)
    raise SystemExit(f"deployment {name} was not served within {seconds:.0f} s")


def wait_for_run(api: str, run_id: str, seconds: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run: dict[str, Any] = api_get(api, f"/flow_runs/{run_id}")
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(2)
    raise SystemExit(f"flow run {run_id} did not end within {seconds:.0f} s")


def screenshot(chromium: str, url: str, out: Path, *, size: str = "1400,1000") -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                        f"--window-size={size}", url], check=True, capture_output=True, timeout=120)  # fmt: skip
    print(f"  {out}  <- {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / ".nightbatch" / "screenshots")
    parser.add_argument("--port", type=int, default=0, help="Prefect server port (default: a free one).")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH: apt-get install -y chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    ui, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api"

    from nightbatch.emulator import EmulatorConfig, run_emulator

    with tempfile.TemporaryDirectory(prefix="nightbatch-shots-") as scratch_dir:
        scratch = Path(scratch_dir)
        (scratch / "prefect").mkdir()
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NIGHTBATCH_", "ANTHROPIC_"))}
        base = {**keep, "PREFECT_HOME": str(scratch / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip
        server_args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        print(f"Prefect server on {ui} (logs in {scratch})")
        with (
            # The demo's clock: at 36,000 (ten simulated hours a real second) a 1-hour cache entry would lapse
            # between a pilot and its fan-out, and the screenshots would show no caching at all.
            run_emulator(EmulatorConfig(time_scale=TIME_SCALE)) as emulator,
            # The bundled UI asks PREFECT_UI_API_URL (default port 4200) where the API is.
            background(server_args, {**base, "PREFECT_UI_API_URL": api}, scratch / "server.log"),
        ):
            wait_healthy(api)
            env = {**base, "PREFECT_API_URL": api, "ANTHROPIC_BASE_URL": emulator.base_url,
                   "NIGHTBATCH_DATABASE_URL": f"sqlite:///{scratch / 'nightbatch.db'}",
                   "NIGHTBATCH_OUTPUT": str(scratch / "out"),
                   "NIGHTBATCH_TASK_CONFIG": str(EXAMPLES / "nightbatch.toml")}  # fmt: skip
            nightbatch = [str(Path(sys.executable).with_name("nightbatch"))]
            subprocess.run([*nightbatch, "db", "upgrade"], env=env, check=True, cwd=ROOT)
            prepare_tasks(scratch / "tasks")
            subprocess.run([*nightbatch, "enqueue", str(scratch / "tasks")], env=env, check=True, cwd=ROOT)
            queue_broken_tasks(env["NIGHTBATCH_DATABASE_URL"])
            serve_args = [sys.executable, "-m", "deployments.serve"]
            with background(serve_args, env, scratch / "serve.log"):
                deployment_id = wait_for_deployment(api, "nightly-enrichment")
                # Like `nightbatch demo`: a deadline shorter than the planner's pilot estimate (15 min until one was
                # measured) would make it send every group uncached, and the cache lever would read $0.
                params = {"params": {"wait": True, "poll_seconds": 1, "deadline_minutes": 30,
                                     "expected_batch_minutes": 5, "budget_usd": 250}}  # fmt: skip
                run = api_post(api, f"/deployments/{deployment_id}/create_flow_run", {"parameters": params})
                print(f"nightly-enrichment run {run['id']} started; waiting for it to end")
                ended = wait_for_run(api, str(run["id"]))
                print(f"ended {ended['state']['type']}: {ended['state'].get('message')}")
                # The flow run page opens on its logs whatever its URL asks (its timeline names the task runs);
                # the Runs page lists the flow runs' names. Its task-run list is still loading when shot.
                shots = [("flow-run", f"{ui}/runs/flow-run/{run['id']}", "1600,2400"),
                         ("runs", f"{ui}/runs", "1600,1000")]  # fmt: skip
                artifacts = api_post(api, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
                for artifact in artifacts:
                    key = artifact.get("key") or ""
                    for suffix, size in ARTIFACT_SHOTS.items():
                        if key.endswith(f"-{suffix}"):
                            shots.append((suffix, f"{ui}/artifacts/artifact/{artifact['id']}", size))
                            break
                for name, url, size in shots:
                    screenshot(chromium, url, args.out / f"{name}.png", size=size)
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
