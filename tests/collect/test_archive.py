"""The results archive: copied byte for byte as the download streams in, and kept even when ingest fails."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session, select

from nightbatch.collect.archive import split_lines
from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Batch, BatchStatus
from nightbatch.emulator import EmulatorServer
from nightbatch.errors import StorageError
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore, read_uri
from nightbatch.submit.step import submit_step
from tests.pipeline.conftest import enqueue_examples, make_services


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
    final_newline=st.booleans(),
)
def test_lines_come_out_whole_however_the_stream_is_cut(lines: list[bytes], cuts: list[int], final_newline: bool):
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert list(split_lines(chunks)) == expected


def _batches(services: Services) -> list[Batch]:
    with Session(services.engine) as session:
        return list(session.exec(select(Batch)).all())


def _provider_file(services: Services, provider_batch_id: str) -> bytes:
    with services.client.result_chunks(provider_batch_id) as chunks:
        return b"".join(chunks)


def test_the_archive_is_the_providers_file_byte_for_byte(local_services: Services, emulator: EmulatorServer):
    enqueue_examples(local_services.engine, per_type=3)
    submit_step(local_services)
    emulator.advance(3600)
    collect_step(local_services)
    for batch in _batches(local_services):
        assert batch.status == BatchStatus.INGESTED
        assert batch.results_uri
        assert batch.provider_batch_id
        assert read_uri(batch.results_uri) == _provider_file(local_services, batch.provider_batch_id)


class _FailingShards(LocalObjectStore):
    """A real local store whose output shards cannot be written (a full disk, say): ingest fails mid-way."""

    @contextmanager
    def writer(self, key: str, content_type: str | None = None) -> Iterator[BinaryIO]:
        if key.startswith("outputs/"):
            raise StorageError(f"cannot start writing {key}: No space left on device")
        with super().writer(key, content_type) as out:
            yield out


def test_results_are_archived_even_when_ingesting_them_fails(local_services: Services, emulator: EmulatorServer,
                                                             tmp_path: Path):  # fmt: skip
    failing = make_services(local_services.engine, _FailingShards(tmp_path / "store"), emulator.base_url)
    enqueue_examples(local_services.engine, per_type=3)
    submit_step(failing)
    emulator.advance(3600)
    with pytest.raises(StorageError, match="No space left"):
        collect_step(failing)
    batches = _batches(local_services)
    assert all(b.status == BatchStatus.ENDED for b in batches)
    failed = min(batches, key=lambda b: b.id or 0)  # the collector stopped at the first batch's failure
    assert failed.results_uri
    assert failed.provider_batch_id
    assert read_uri(failed.results_uri) == _provider_file(local_services, failed.provider_batch_id)
    # The next ingest of that batch reads the archive: the provider's results endpoint is not asked again.
    emulator.faults.fail("batch_results", "permission_error", times=None)  # not retried by the SDK
    store = LocalObjectStore(tmp_path / "store")
    healthy = make_services(local_services.engine, store, emulator.base_url, worker="worker-b")
    _release_ingest_leases(local_services)
    second = collect_step(healthy)
    assert [r.batch_id for r in second.ingested] == [failed.id]  # the others met the faults
    assert len(second.errors) == len(batches) - 1


def test_a_dropped_download_archives_nothing(local_services: Services, emulator: EmulatorServer):
    enqueue_examples(local_services.engine, per_type=3)
    submit_step(local_services)
    emulator.advance(3600)
    emulator.faults.drop("batch_results", after_lines=1, times=None)
    report = collect_step(local_services)
    assert report.errors
    assert not report.ingested
    assert not list(local_services.store.list("results/"))
    assert all(b.results_uri is None and b.status == BatchStatus.ENDED for b in _batches(local_services))


def _release_ingest_leases(services: Services) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update
    from sqlmodel import col

    with services.engine.begin() as conn:
        conn.execute(
            update(Batch)
            .where(col(Batch.claimed_at).is_not(None))
            .values(claimed_at=datetime.now(UTC) - timedelta(hours=2))
        )


@pytest.fixture(autouse=True)
def _no_faults_left(emulator: EmulatorServer) -> Iterator[None]:
    yield
    emulator.faults.clear()
