"""End to end, as production runs it: a Prefect server, the deployments of prefect.yaml and a process worker.

A temporary ``prefect server start``; the ``nightbatch`` process pool; ``prefect deploy`` of the
``classification-backfill`` deployment from ``deployments/prefect.yaml``; a run of it triggered over the API
against JSONL files on moto's S3 server; ``prefect worker start --run-once`` executes it with the nightbatch
settings in its environment (the test database, outputs on the bucket, the emulator as the API). The run must
end COMPLETED with every task succeeded, usage recorded and output shards in the bucket; running it again
enqueues nothing new.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from nightbatch.db.engine import make_engine
from nightbatch.db.models import Run, RunStatus, Task, UsageRecord
from nightbatch.emulator import EmulatorServer
from tests.deployments.prefect_server import PrefectServer, background, prefect_cli, prefect_server, tail
from tests.deployments.support import ROOT

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

POOL = "nightbatch"
DEPLOYMENT = "nightbatch-backfill/classification-backfill"
TASK_FILES = ("ticket_triage", "date_extraction")
LINES_PER_FILE = 10
RUN_TIMEOUT_SECONDS = 120
PREFECT_FILE = "deployments/prefect.yaml"  # relative: `prefect deploy` runs from the repository root


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
    response = httpx.get(f"{server.api_url}/deployments/name/{DEPLOYMENT}", timeout=30)
    assert response.status_code == 200, response.text
    deployment: dict[str, Any] = response.json()
    return deployment


def _trigger(server: PrefectServer, bucket: str) -> str:
    """Create a run of the backfill deployment, as ``prefect deployment run --params`` does; its id."""
    params = {
        "source": f"s3://{bucket}/in/",
        "source_task_type": None,  # each file's name is its task type
        "task_type": list(TASK_FILES),
        "budget_usd": 500,
        "deadline_minutes": 1.5,
        "poll_seconds": 0.5,
    }
    created = httpx.post(
        f"{server.api_url}/deployments/{_deployment(server)['id']}/create_flow_run",
        json={"parameters": {"params": params}},
        timeout=30,
    )
    assert created.status_code == 201, created.text  # enforce_parameter_schema: the server checked params
    flow_run_id: str = created.json()["id"]
    return flow_run_id


def _flow_run(server: PrefectServer, flow_run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.api_url}/flow_runs/{flow_run_id}", timeout=30)
    response.raise_for_status()
    flow_run: dict[str, Any] = response.json()
    return flow_run


def _logs(server: PrefectServer, flow_run_id: str) -> list[tuple[str | None, str]]:
    """The flow run's log lines as the UI lists them: (task run id, or None for the flow run's own; message)."""
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
    response = httpx.post(f"{server.api_url}/logs/filter", json=body, timeout=30)
    response.raise_for_status()
    return [(line["task_run_id"], line["message"]) for line in response.json()]


def _run_worker_once(server: PrefectServer, env: dict[str, str], log: Path, flow_run_id: str) -> None:
    """``prefect worker start --run-once``: picks up the scheduled run and returns once it has finished."""
    args = ["--no-prompt", "worker", "start", "--pool", POOL, "--type", "process", "--run-once"]
    with background(args, env, log) as worker:
        with suppress(subprocess.TimeoutExpired):  # reported below with the run's state and the worker's log
            worker.process.wait(timeout=RUN_TIMEOUT_SECONDS)
        state = _flow_run(server, flow_run_id)["state"]
        assert state["type"] == "COMPLETED", (
            f"flow run {flow_run_id} is {state['type']} ({state.get('message')}); worker "
            f"{'still running' if worker.running() else f'exited {worker.process.returncode}'}:\n{tail(log, 80)}"
        )
        assert worker.process.returncode == 0, tail(log, 80)


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


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("db_backend", ["sqlite"])  # overrides the sqlite/postgresql fixture: one run is enough
def test_a_process_worker_runs_the_deployed_backfill_to_the_end(
    db_backend: str,
    db_url: str,
    emulator: EmulatorServer,
    s3_client: S3Client,
    s3_bucket: str,
    s3_env: dict[str, str],
    tmp_path: Path,
):
    clock = Clock()
    emulator.configure(time_scale=36_000)  # an hour of batch time in a tenth of a second
    _upload_inputs(s3_client, s3_bucket)

    with prefect_server(tmp_path) as server:
        clock.lap("prefect server healthy")
        cli_env = server.environment()
        prefect_cli(["work-pool", "create", POOL, "--type", "process"], cli_env)
        prefect_cli(
            ["--no-prompt", "deploy", "--prefect-file", PREFECT_FILE, "--name", "classification-backfill"], cli_env
        )
        deployment = _deployment(server)
        assert (deployment["entrypoint"], deployment["work_pool_name"]) == ("flows/backfill.py:backfill", POOL)
        assert deployment["job_variables"]["env"] == {"PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING"}
        clock.lap("work pool created, deployment deployed")

        worker_env = server.environment(
            **s3_env,
            NIGHTBATCH_HOME=str(tmp_path / "nightbatch-home"),
            NIGHTBATCH_DATABASE_URL=db_url,
            NIGHTBATCH_OUTPUT=f"s3://{s3_bucket}/out",
            NIGHTBATCH_TASK_CONFIG=str(ROOT / "examples" / "nightbatch.toml"),
            ANTHROPIC_BASE_URL=emulator.base_url,
        )

        first = _trigger(server, s3_bucket)
        _run_worker_once(server, worker_env, tmp_path / "worker-1.log", first)
        clock.lap("first backfill run completed")
        # The job variables' env reached the flow run: no "Finished in state Completed()" per task run, while
        # the flow run's own lines are there.
        logs = _logs(server, first)
        assert any(task_run is None for task_run, _ in logs), logs
        assert [m for task_run, m in logs if task_run and m.startswith("Finished in state")] == []

        tasks, usage, runs = _database_state(db_url)
        assert tasks == {(name, "succeeded"): LINES_PER_FILE for name in TASK_FILES}
        assert usage >= 1
        assert [(r.kind, r.status) for r in runs] == [("backfill", RunStatus.SUCCEEDED)]
        assert runs[0].totals["enqueued"] == len(TASK_FILES) * LINES_PER_FILE
        assert runs[0].totals["outcomes"] == {"succeeded": len(TASK_FILES) * LINES_PER_FILE}
        listing = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="out/outputs/")
        shards = [item["Key"] for item in listing.get("Contents", [])]
        for name in TASK_FILES:
            assert any(key.startswith(f"out/outputs/task_type={name}/") for key in shards), shards

        # The same backfill again: everything is already queued (by idempotency key), nothing new runs.
        second = _trigger(server, s3_bucket)
        _run_worker_once(server, worker_env, tmp_path / "worker-2.log", second)
        clock.lap("second backfill run completed")

        assert _database_state(db_url)[0] == tasks
        rerun = _database_state(db_url)[2][-1]
        assert (rerun.kind, rerun.status) == ("backfill", RunStatus.SUCCEEDED)
        assert rerun.totals["enqueued"] == 0
        assert rerun.totals["already_queued"] == len(TASK_FILES) * LINES_PER_FILE
    clock.lap("server and workers stopped")
