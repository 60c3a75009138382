"""The batch rows ingest works on: the row read before its results are decided, the batches a calibration
ingests itself, and the two writes an ingest makes to its row in its own transaction (where the results
are archived, which an archive's salvage also records on its own; ``ended`` ─▶ ``ingested``).

The row's other states, and the lease under which a collector ingests an ended row, are
:mod:`nightbatch.db.batches`; the task rows of each chunk of results are read by
:mod:`nightbatch.db.ingest_lookup` and written by :mod:`nightbatch.db.ingest_writes`, whose
:func:`~nightbatch.db.ingest_writes.ingest_transaction` is the transaction the writes here run in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, select, update
from sqlmodel import Session, col

from nightbatch.db.models import Batch, BatchStatus

__all__ = ["calibration_batches", "load_batch", "mark_ingested", "record_results_uri"]


def load_batch(engine: Engine, batch_id: int) -> Batch | None:
    """The batch row as it is now (a detached snapshot), or None."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Batch, batch_id)


def calibration_batches(engine: Engine, calibration_id: int) -> list[Batch]:
    """The batches a calibration sent (one or more per candidate model), oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(Batch).where(col(Batch.calibration_id) == calibration_id).order_by(col(Batch.id))
        return list(session.execute(query).scalars())


def record_results_uri(conn: Connection, batch_id: int, uri: str) -> None:
    """Where the batch's results are archived: a second ingest reads them there, not from the provider."""
    conn.execute(update(Batch).where(col(Batch.id) == batch_id).values(results_uri=uri))


def mark_ingested(conn: Connection, batch_id: int, now: datetime) -> None:
    """``ended -> ingested``, its ingest lease given up, in the ingest's own transaction."""
    conn.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id)
        .values(status=BatchStatus.INGESTED, ingested_at=now, claimed_by=None, claimed_at=None)
    )
