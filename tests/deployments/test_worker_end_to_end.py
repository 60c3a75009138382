"""End to end, as production scales out: a Prefect server, the deployments of prefect.yaml, several process workers.

A temporary ``prefect server start``; the ``nightbatch`` process pool and the ``nightbatch-submit`` global
concurrency limit (one slot), created with the commands docs/scale-out.md gives; ``prefect deploy`` of the
``classification-backfill`` deployment from ``deployments/prefect.yaml``; then two ``prefect worker start
--pool nightbatch --type process --limit 1`` processes with the nightbatch settings in their environment (one
test database, outputs on moto's S3 bucket, the emulator as the API). Two runs of the backfill over the same
JSONL files, triggered over the API, run at once, one on each worker, submitting a few tasks per round so
that both claim from the one queue. Then:

* both runs end COMPLETED, each on its own worker, every task succeeded, usage recorded, output shards in
  the bucket;
* nothing was claimed, sent, billed or ingested twice: the backfill benchmark's database audit
  (``nightbatch.db.audit``) and the campaigns' check of database, objects and the provider's ledger
  (``tests.campaigns.invariants``) find nothing;
* every submit round held the limit's one slot, and every batch was created while its own flow run held
  it (``tests.deployments.submit_slot``);
* running the backfill again enqueues nothing new.

On PostgreSQL when ``NIGHTBATCH_TEST_POSTGRES_URL`` is set (claims by ``FOR UPDATE SKIP LOCKED``; fails if
that server is down), else on a SQLite file.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from nightbatch.db.audit import audit_queue
from nightbatch.db.engine import make_engine
from nightbatch.db.models import Batch, Run, RunStatus, Task, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.storage import open_store
from tests.campaigns.harness import PRICES
from tests.campaigns.invariants import check
from tests.deployments.prefect_api import request
from tests.deployments.prefect_server import Background, PrefectServer, background, prefect_cli, prefect_server, tail
from tests.deployments.submit_slot import batches_outside_their_hold, read_holds
from tests.deployments.support import ROOT
from tests.fixtures.db import POSTGRES_URL_ENV

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

POOL = "nightbatch"
DEPLOYMENT = "nightbatch-backfill/classification-backfill"
SUBMIT_LIMIT = "nightbatch-submit"  # the global concurrency limit of docs/scale-out.md
WORKERS = 2
TASK_FILES = ("ticket_triage", "date_extraction")
LINES_PER_FILE = 10
TASKS = len(TASK_FILES) * LINES_PER_FILE
# Tasks per submit round: under the 20 queued, so that the runs take turns at the slot and both claim; a run
# has max_attempts (3) rounds, so one alone could still send them all if the other never got the slot.
ROUND_LIMIT = 8
RUN_TIMEOUT_SECONDS = 120
PREFECT_FILE = "deployments/prefect.yaml"  # relative: `prefect deploy` runs from the repository root
ENDED = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# PostgreSQL (SKIP LOCKED claims, as in production) whenever the run has one; the fixture fails if it is down.
BACKEND = "postgresql" if os.environ.get(POSTGRES_URL_ENV) else "sqlite"


class Clock:
    """Prints how long each step took (shown with ``pytest -s`` or when the test fails)."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        print(f"[e2e] {step}: {now - self.last:.1f}s (total {now - self.start:.1f}s)")
        self.last = now


def _upload_inputs(s3_client: S3Client, bucket: str) -> None:
    for name in TASK_FILES:
        lines = (ROOT / "examples" / "tasks" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        body = "\n".join(lines[:LINES_PER_FILE]) + "\n"
        s3_client.put_object(Bucket=bucket, Key=f"in/{name}.jsonl", Body=body.encode())


def _deployment(server: PrefectServer) -> dict[str, Any]:
    response = request("GET", f"{server.api_url}/deployments/name/{DEPLOYMENT}")
    assert response.status_code == 200, response.text
    deployment: dict[str, Any] = response.json()
    return deployment


def _trigger(server: PrefectServer, bucket: str) -> str:
    """Create a run of the backfill deployment, as ``prefect deployment run --params`` does; its id."""
    params = {
        "source": f"s3://{bucket}/in/",
        "source_task_type": None,  # each file's name is its task type
        "task_type": list(TASK_FILES),
        "limit": ROUND_LIMIT,
        "budget_usd": 500,
        "deadline_minutes": 1.5,
        "poll_seconds": 0.5,
    }
    created = request(
        "POST",
        f"{server.api_url}/deployments/{_deployment(server)['id']}/create_flow_run",
        # The key makes a retried create (the server was busy) return the same run rather than a second one.
        json={"parameters": {"params": params}, "idempotency_key": uuid.uuid4().hex},
    )
    assert created.status_code == 201, created.text  # enforce_parameter_schema: the server checked params
    flow_run_id: str = created.json()["id"]
    return flow_run_id


def _flow_run(server: PrefectServer, flow_run_id: str) -> dict[str, Any]:
    response = request("GET", f"{server.api_url}/flow_runs/{flow_run_id}")
    response.raise_for_status()
    flow_run: dict[str, Any] = response.json()
    return flow_run


def _flow_run_logs(server: PrefectServer, flow_run_id: str) -> list[tuple[str | None, str]]:
    """The flow run's log lines as the UI lists them: (task run id, or None for the flow run's own; message)."""
    lines: list[tuple[str | None, str]] = []
    page = 200
    for offset in range(0, 100 * page, page):
        body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": page, "offset": offset}
        response = request("POST", f"{server.api_url}/logs/filter", json=body)
        response.raise_for_status()
        lines += [(line["task_run_id"], line["message"]) for line in response.json()]
        if len(response.json()) < page:
            break
    return lines


def _start_worker(stack: ExitStack, env: dict[str, str], log: Path, name: str) -> Background:
    """``prefect worker start`` on the pool, one flow run at a time; stopped (SIGTERM) when the stack closes."""
    args = ["--no-prompt", "worker", "start", "--pool", POOL, "--type", "process", "--name", name, "--limit", "1"]
    return stack.enter_context(background(args, env, log))


def _logs(workers: list[Background]) -> str:
    return "\n".join(
        f"--- {w.log.name} ({'running' if w.running() else f'exited {w.process.returncode}'}):\n{tail(w.log, 60)}"
        for w in workers
    )


def _wait_online(server: PrefectServer, names: list[str], workers: list[Background]) -> None:
    """Wait until every worker has registered with the pool, so that no worker takes every run alone."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        response = request("POST", f"{server.api_url}/work_pools/{POOL}/workers/filter", json={})
        response.raise_for_status()
        online = {w["name"] for w in response.json() if w["status"] == "ONLINE"}
        if online >= set(names):
            return
        late = time.monotonic() > deadline or not all(w.running() for w in workers)
        assert not late, f"workers online: {sorted(online)}\n{_logs(workers)}"
        time.sleep(0.2)


def _wait_completed(server: PrefectServer, flow_run_ids: list[str], workers: list[Background]) -> list[dict[str, Any]]:
    """Wait until every flow run has ended, then require each COMPLETED; the flow runs as the API shows them."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        runs = [_flow_run(server, flow_run_id) for flow_run_id in flow_run_ids]
        if all(run["state"]["type"] in ENDED for run in runs) or time.monotonic() > deadline:
            break
        if not all(worker.running() for worker in workers):
            break  # reported below with the workers' logs
        time.sleep(0.5)
    for run in runs:
        state = run["state"]
        assert state["type"] == "COMPLETED", (
            f"flow run {run['id']} is {state['type']} ({state.get('message')})\n{_logs(workers)}"
        )
    return runs


def _database_state(db_url: str) -> tuple[dict[tuple[str, str], int], int, list[Any]]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            kind = (col(Task.task_type), col(Task.status))
            by_type = select(*kind, func.count()).group_by(*kind)
            tasks = conn.execute(by_type).all()
            usage = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
            runs = conn.execute(select(col(Run.kind), col(Run.status), col(Run.totals)).order_by(col(Run.id))).all()
            return {(str(t), str(s)): n for t, s, n in tasks}, usage, list(runs)
    finally:
        engine.dispose()


def _exactly_once_problems(db_url: str, output: str, s3_endpoint_url: str, emulator: EmulatorServer) -> list[str]:
    """What the backfill benchmark's audit and the concurrency campaign's check find wrong (must be nothing)."""
    engine = make_engine(db_url)
    try:
        problems = list(audit_queue(engine).problems)
        store = open_store(output, endpoint_url=s3_endpoint_url)
        problems += check(engine, store, emulator.ledger.entries(), PRICES, max_attempts=1).violations
        return problems
    finally:
        engine.dispose()


def _batches_by_flow_run(db_url: str, flow_runs: list[dict[str, Any]]) -> list[tuple[int, str, datetime]]:
    """Each routine batch: its id, the Prefect flow run that created it, and when.

    A process worker runs each flow run in a process of its own (``infrastructure_pid``: ``host:pid``), and
    the flow's ``run`` row records that pid.
    """
    by_pid = {int(str(r["infrastructure_pid"]).rsplit(":", 1)[-1]): str(r["id"]) for r in flow_runs}
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(col(Batch.id), col(Run.pid), col(Batch.created_at))
                .join(Run, col(Run.id) == col(Batch.run_id))
                .where(col(Batch.purpose) == "task")
                .order_by(col(Batch.id))
            ).all()
    finally:
        engine.dispose()
    return [(int(batch_id), by_pid[int(pid)], created) for batch_id, pid, created in rows]


def _submit_task_runs(server: PrefectServer, flow_run_ids: set[str]) -> int:
    """How many ``submit_batches`` task runs the flow runs made (each acquires the submit slot once).

    Counted by task key (the function's name and a hash of its code), not by task run name, which the flows
    choose per run.
    """
    count, page = 0, 200
    for offset in range(0, 100 * page, page):
        body = {"task_runs": {"flow_run_id": {"any_": sorted(flow_run_ids)}}, "limit": page, "offset": offset}
        response = request("POST", f"{server.api_url}/task_runs/filter", json=body)
        response.raise_for_status()
        task_runs = response.json()
        count += sum(1 for t in task_runs if str(t["task_key"]).startswith("submit_batches-"))
        if len(task_runs) < page:
            break
    return count


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("db_backend", [BACKEND])  # overrides the sqlite/postgresql fixture: one run is enough
def test_process_workers_on_one_pool_run_the_deployed_backfill_exactly_once(
    db_backend: str,
    db_url: str,
    emulator: EmulatorServer,
    s3_client: S3Client,
    s3_bucket: str,
    s3_env: dict[str, str],
    s3_endpoint_url: str,
    tmp_path: Path,
):
    clock = Clock()
    emulator.configure(time_scale=36_000)  # an hour of batch time in a tenth of a second
    _upload_inputs(s3_client, s3_bucket)

    with prefect_server(tmp_path) as server, ExitStack() as workers:
        clock.lap("prefect server healthy")
        cli_env = server.environment()
        prefect_cli(["work-pool", "create", POOL, "--type", "process"], cli_env)
        prefect_cli(["gcl", "create", SUBMIT_LIMIT, "--limit", "1"], cli_env)
        prefect_cli(
            ["--no-prompt", "deploy", "--prefect-file", PREFECT_FILE, "--name", "classification-backfill"], cli_env
        )
        deployment = _deployment(server)
        assert (deployment["entrypoint"], deployment["work_pool_name"]) == ("flows/backfill.py:backfill", POOL)
        assert deployment["job_variables"]["env"] == {"PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING"}
        clock.lap("work pool and submit limit created, deployment deployed")

        output = f"s3://{s3_bucket}/out"
        worker_env = server.environment(
            **s3_env,
            NIGHTBATCH_HOME=str(tmp_path / "nightbatch-home"),
            NIGHTBATCH_DATABASE_URL=db_url,
            NIGHTBATCH_OUTPUT=output,
            NIGHTBATCH_TASK_CONFIG=str(ROOT / "examples" / "nightbatch.toml"),
            NIGHTBATCH_SUBMIT_CONCURRENCY_LIMIT=SUBMIT_LIMIT,
            ANTHROPIC_BASE_URL=emulator.base_url,
            PREFECT_WORKER_QUERY_SECONDS="2",  # pick runs up within two seconds (default 10)
        )
        names = [f"worker-{n}" for n in range(1, WORKERS + 1)]
        started = [_start_worker(workers, worker_env, tmp_path / f"{name}.log", name) for name in names]
        _wait_online(server, names, started)
        clock.lap(f"{WORKERS} workers online")
        # Each worker takes one run and, at --limit 1, leaves the other to the next worker's poll.
        together = [_trigger(server, s3_bucket) for _ in range(WORKERS)]
        flow_runs = _wait_completed(server, together, started)
        clock.lap(f"{WORKERS} backfill runs completed on {WORKERS} workers")

        # The job variables' env reached the flow runs: no "Finished in state Completed()" per task run, while
        # the flow run's own lines are there.
        for flow_run_id in together:
            logs = _flow_run_logs(server, flow_run_id)
            assert any(task_run is None for task_run, _ in logs), logs
            assert [m for task_run, m in logs if task_run and m.startswith("Finished in state")] == []
        ran_on = Counter(run["labels"].get("prefect.worker.name") for run in flow_runs)
        assert ran_on == Counter(names), f"each worker runs one flow run: {ran_on}"
        tasks, usage, runs = _database_state(db_url)
        assert tasks == {(name, "succeeded"): LINES_PER_FILE for name in TASK_FILES}
        assert usage >= 1
        assert [(r.kind, r.status) for r in runs] == [("backfill", RunStatus.SUCCEEDED)] * WORKERS
        # The runs enqueued the same files at once: each task was inserted by one and skipped by the other.
        assert sum(r.totals["enqueued"] for r in runs) == TASKS
        assert all(r.totals["enqueued"] + r.totals["already_queued"] == TASKS for r in runs)
        outcomes = sum((Counter(r.totals["outcomes"]) for r in runs), Counter[str]())
        assert outcomes == {"succeeded": TASKS}
        listing = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="out/outputs/")
        shards = [item["Key"] for item in listing.get("Contents", [])]
        for name in TASK_FILES:
            assert any(key.startswith(f"out/outputs/task_type={name}/") for key in shards), shards
        problems = _exactly_once_problems(db_url, output, s3_endpoint_url, emulator)
        assert not problems, "\n".join(problems[:40])
        clock.lap("exactly-once checks")

        # The same backfill again: everything is already queued (by idempotency key), nothing new runs.
        again = _trigger(server, s3_bucket)
        flow_runs += _wait_completed(server, [again], started)
        clock.lap("backfill run again completed")

        assert _database_state(db_url)[0] == tasks
        rerun = _database_state(db_url)[2][-1]
        assert (rerun.kind, rerun.status) == ("backfill", RunStatus.SUCCEEDED)
        assert rerun.totals["enqueued"] == 0
        assert rerun.totals["already_queued"] == TASKS

        # One submitter at a time: every submit round (all three runs) held the limit's one slot, every batch
        # was created while its own flow run held it, and both concurrent runs took their turn.
        every_run = {str(run["id"]) for run in flow_runs}
        holds = read_holds(
            server.api_url,
            lambda holds: (
                len(holds) == _submit_task_runs(server, every_run) and {h.flow_run_id for h in holds} == every_run
            ),
        )
        assert {(h.limit_name, h.limit, h.slots) for h in holds} == {(SUBMIT_LIMIT, 1, 1)}
        assert not batches_outside_their_hold(holds, _batches_by_flow_run(db_url, flow_runs))
        clock.lap("submit slot checked")
        per_run = Counter(b[1] for b in _batches_by_flow_run(db_url, flow_runs))
        print(f"[e2e] {len(holds)} submit holds; batches per flow run {dict(per_run)}")
    clock.lap("server and workers stopped")
