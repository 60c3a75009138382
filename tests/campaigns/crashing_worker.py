"""A fork server that runs the orchestrator in child processes and SIGKILLs them at chosen points.

Importing nightbatch costs ~1.5 s; a crash campaign runs hundreds of workers. So one server process
imports it once (``python -m tests.campaigns.crashing_worker``), then reads one JSON job per stdin line,
forks a child per job and answers one JSON line per job on stdout. Production code has no crash hooks:
the child installs ``sys.setprofile`` and kills itself (``SIGKILL``, nothing is flushed or rolled back by
Python) on the N-th ``call`` / ``return`` of a chosen function, or ``c_call`` / ``c_return`` of a builtin.

A job::

    {"id": 7, "db_url": "...", "store": "/tmp/.../store", "base_url": "http://127.0.0.1:PORT",
     "config": "/tmp/.../campaign.toml", "worker": "crash-a", "lease_seconds": 900,
     "kill": {"target": "nightbatch.submit.submitter:record_created", "event": "return", "nth": 2},
     "steps": ["submit", "advance:3600", "collect"], "chunk": 2, "report": "/tmp/.../report.json"}

or ``{"id": 8, "parallel": [job, job, ...]}`` to run several workers at once; ``"warm": true`` runs a
job in the server itself (no kill), so that every later child starts with lazy imports done. Steps: ``submit``,
``collect``, ``advance:<seconds>`` (the emulator's clock, over its admin HTTP API), ``sleep:<seconds>``,
``age`` (every lease in the database made to look lapsed) and ``drain:<seconds>`` (submit and collect
until the database has no work left, at most that many real seconds). ``chunk`` shrinks the ingest
chunk, so a batch is ingested over several statements. The answer, per job:
``{"id", "outcome": "killed" | "finished" | "error", "error"}``, or ``{"id", "workers": [answers]}``.

Generators and context managers are functions too: their ``return`` fires at every ``yield``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import col

import nightbatch.collect.ingest as ingest_module
from nightbatch.collect.poll import collect_step
from nightbatch.config import Settings
from nightbatch.db.engine import make_engine
from nightbatch.db.models import Batch, BatchStatus, Task, TaskStatus
from nightbatch.errors import NightbatchError
from nightbatch.pricing import load_price_table
from nightbatch.services import Services
from nightbatch.storage import open_store
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types

EXIT_ERROR = 3
_OPEN_TASKS = [TaskStatus.QUEUED, TaskStatus.CLAIMED, TaskStatus.SUBMITTED]
_OPEN_BATCHES = [BatchStatus.PENDING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELING, BatchStatus.ENDED]


def resolve(target: str) -> Any:
    """``package.module:Qual.name`` -> the function's code object; ``builtin:os.replace`` -> the builtin."""
    module_name, _, qualname = target.partition(":")
    if module_name == "builtin":
        module_name, _, qualname = qualname.rpartition(".")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if target.startswith("builtin:"):
        return obj
    return inspect.unwrap(obj).__code__


def arm(target: str, event: str, nth: int, counter: list[int]) -> None:
    """SIGKILL this process at the ``nth`` ``event`` of ``target``; ``counter[0]`` counts events seen."""
    wanted = resolve(target)
    builtin = event.startswith("c_")

    def hook(frame: Any, what: str, arg: Any) -> None:
        if what != event or (arg is not wanted if builtin else frame.f_code is not wanted):
            return
        counter[0] += 1
        if counter[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.setprofile(hook)
    threading.setprofile(hook)  # and in threads started later (ingest writes on PostgreSQL from one)


def services_for(job: dict[str, Any]) -> Services:
    settings = Settings(anthropic_api_key=None, max_attempts=3, lease_seconds=job.get("lease_seconds", 900))
    return Services(
        settings=settings,
        engine=make_engine(job["db_url"]),
        store=open_store(job["store"]),
        registry=load_task_types(Path(job["config"])),
        prices=load_price_table(),
        worker=job["worker"],
        base_url=job["base_url"],
    )


def _advance(base_url: str, seconds: float) -> None:
    request = urllib.request.Request(
        f"{base_url}/_emulator/clock/advance",
        data=json.dumps({"seconds": seconds}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def _age_leases(services: Services) -> None:
    """Make every lease look lapsed (as if this worker had waited out the lease time)."""
    old = datetime.now(UTC) - timedelta(hours=2)
    with services.engine.begin() as conn:
        conn.execute(update(Batch).where(col(Batch.claimed_at).is_not(None)).values(claimed_at=old))
        conn.execute(update(Task).where(col(Task.claimed_at).is_not(None)).values(claimed_at=old))


def _work_left(services: Services) -> bool:
    with services.engine.connect() as conn:
        tasks = conn.execute(select(func.count()).where(col(Task.status).in_(_OPEN_TASKS))).scalar_one()
        batches = conn.execute(select(func.count()).where(col(Batch.status).in_(_OPEN_BATCHES))).scalar_one()
    return bool(tasks or batches)


def drain(services: Services, seconds: float, report: dict[str, Any], *, limit: int) -> None:
    """Submit and collect until no work is left (or ``seconds`` pass), as a long-running worker would."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        submitted = submit_step(services, limit=limit)
        report["claimed"] += submitted.claimed
        report["batches"] += [b.provider_batch_id for b in submitted.batches if b.provider_batch_id]
        collected = collect_step(services)
        report["ingested"] += [r.batch_id for r in collected.ingested if not r.already_ingested]
        report["errors"] += collected.errors
        if not submitted.claimed and not collected.ingested and not _work_left(services):
            return
        if not submitted.claimed and not collected.ingested:
            time.sleep(0.02)


def run(job: dict[str, Any]) -> int:
    """The child's work; returns its exit code (a kill never returns)."""
    if job.get("chunk"):
        ingest_module.CHUNK = int(job["chunk"])
    services = services_for(job)
    counter = [0]
    report: dict[str, Any] = {"claimed": 0, "batches": [], "ingested": [], "errors": []}
    kill = job.get("kill")
    if kill:
        arm(kill["target"], kill["event"], int(kill["nth"]), counter)
    try:
        for step in job["steps"]:
            name, _, argument = step.partition(":")
            try:
                if name == "submit":
                    report["claimed"] += submit_step(services).claimed
                elif name == "collect":
                    collected = collect_step(services)
                    report["ingested"] += [r.batch_id for r in collected.ingested if not r.already_ingested]
                elif name == "advance":
                    _advance(job["base_url"], float(argument))
                elif name == "sleep":
                    time.sleep(float(argument))
                elif name == "age":
                    _age_leases(services)
                elif name == "drain":
                    drain(services, float(argument), report, limit=int(job.get("limit", 100_000)))
                else:
                    raise ValueError(f"unknown step {step!r}")
            except NightbatchError as exc:  # an orchestrator error is an outcome, as in a flow run
                report["errors"].append(f"{step}: {type(exc).__name__}: {exc}")
    finally:
        sys.setprofile(None)
    report["calls"] = counter[0]
    if job.get("report"):
        with open(job["report"], "w", encoding="utf-8") as out:
            json.dump(report, out)
    services.close()
    return 0


def _child(job: dict[str, Any]) -> None:
    os.dup2(2, 1)  # stdout is the protocol channel: keep the child's prints off it
    code = EXIT_ERROR
    try:
        code = run(job)
    except BaseException:
        sys.setprofile(None)
        with open(job.get("error_file") or os.devnull, "w", encoding="utf-8") as out:
            out.write(traceback.format_exc())
    finally:
        sys.stderr.flush()
        os._exit(code)


def _answer(job: dict[str, Any], status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": job.get("id")}
    if os.WIFSIGNALED(status):
        answer["outcome"] = "killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal {os.WTERMSIG(status)}"
    elif os.WEXITSTATUS(status) == 0:
        answer["outcome"] = "finished"
    else:
        answer["outcome"] = "error"
        error_file = job.get("error_file")
        if error_file and os.path.exists(error_file):
            with open(error_file, encoding="utf-8") as errors:
                answer["error"] = errors.read()[-4000:]
    return answer


def _fork(job: dict[str, Any]) -> int:
    pid = os.fork()
    if pid == 0:
        _child(job)
    return pid


class ForkServer:
    """The test side: starts the server, sends jobs, reads answers."""

    def __init__(self, log_path: str, env: dict[str, str] | None = None) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.campaigns.crashing_worker"],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._next = 0

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Send one job (or ``{"parallel": [...]}``) and wait for its answer."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._next += 1
        self._process.stdin.write(json.dumps({"id": self._next, **job}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server died (exit code {self._process.poll()}); see {self._log.name}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        workers = job.get("parallel")
        if job.get("warm"):
            # Run once in this process, so every child starts with the lazy imports and SDK models built.
            answer = {"id": job.get("id"), "outcome": "finished" if run(job) == 0 else "error"}
        elif workers is None:
            _, status = os.waitpid(_fork(job), 0)
            answer = _answer(job, status)
        else:
            pids = [_fork(worker) for worker in workers]
            answers = [_answer(worker, os.waitpid(pid, 0)[1]) for worker, pid in zip(workers, pids, strict=True)]
            answer = {"id": job.get("id"), "workers": answers}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
