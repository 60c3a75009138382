"""A failure before create releases its tasks at once, and an idle submit says why (issue 15, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import Batch, BatchStatus, Task, TaskStatus
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue
from nightbatch.storage import LocalObjectStore, open_store
from nightbatch.submit.step import submit_step
from nightbatch.submit.submitter import FailedBeforeCreateError
from tests.fixtures.services import make_services


def _statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(s): n for s, n in conn.execute(select(Task.status, func.count()).group_by(Task.status))}


def _enqueue(engine: Engine, n: int) -> None:
    for i in range(n):
        enqueue(engine, "date_extraction", {"text": f"Paid on 2024-03-{i + 1:02d}."})


@pytest.mark.usefixtures("aws_env")
def test_a_missing_bucket_releases_the_tasks_at_once(
    engine: Engine, emulator: EmulatorServer, s3_endpoint_url: str, tmp_path: Path
):
    _enqueue(engine, 4)
    missing = open_store("s3://no-such-bucket-nightbatch/prefix", endpoint_url=s3_endpoint_url)
    services = make_services(engine, missing, emulator.base_url)
    with pytest.raises(FailedBeforeCreateError, match=r"nothing was sent; its 4 task\(s\) are back in the queue"):
        submit_step(services)
    # At once, not after the lease: the tasks are queued, their attempt given back, the row says why.
    assert _statuses(engine) == {"queued": 4}
    with engine.connect() as conn:
        batch = conn.execute(select(Batch.status, Batch.error, Batch.provider_batch_id)).one()
        attempts = set(conn.execute(select(col(Task.attempts))).scalars())
    assert batch.status == BatchStatus.CREATE_FAILED
    assert batch.provider_batch_id is None
    assert "failed before create" in (batch.error or "")
    assert attempts == {0}
    assert list(services.client.list_batches()) == []  # nothing reached the provider
    # A working store: the next round sends them, no lease to wait for.
    services.store = LocalObjectStore(tmp_path / "store")
    report = submit_step(services)
    assert report.submitted_tasks == 4
    assert report.nothing_sent is None


def test_an_idle_submit_says_why(engine: Engine, emulator: EmulatorServer, tmp_path: Path):
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    report = submit_step(services)
    assert (report.claimed, report.nothing_sent) == (0, "nothing is queued")

    enqueue(engine, "no_such_type", {"text": "x"})
    report = submit_step(services)
    assert "unconfigured types" in (report.nothing_sent or "")
    assert "no_such_type: 1" in (report.nothing_sent or "")

    _enqueue(engine, 3)
    other = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url, worker="worker-b")
    from nightbatch.queue.claim import claim

    assert len(claim(engine, 10, "worker-b", task_types=["date_extraction"])) == 3
    report = submit_step(services)
    assert report.claimed == 0
    assert "3 task(s) are claimed by worker worker-b until" in (report.nothing_sent or "")
    other.close()

    with engine.begin() as conn:
        conn.execute(Task.__table__.update().values(status=TaskStatus.SUBMITTED))  # type: ignore[attr-defined]
    report = submit_step(services)
    assert "at the provider in open batches" in (report.nothing_sent or "")
