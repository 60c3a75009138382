"""The batch state machine: every transition of a ``batch`` row, in one place."""

# --- from i17-ingest ---

from datetime import datetime

from sqlalchemy import Connection, Engine, select, update
from sqlmodel import Session, col

from nightbatch.claude import BatchInfo
from nightbatch.db.models import Batch, BatchStatus

_POLLED = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELING)


def load_batch(engine: Engine, batch_id: int) -> Batch | None:
    """The batch row as it is now (a detached snapshot), or None."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Batch, batch_id)


def calibration_batches(engine: Engine, calibration_id: int) -> list[Batch]:
    """The batches a calibration sent (one or more per candidate model), oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(Batch).where(col(Batch.calibration_id) == calibration_id).order_by(col(Batch.id))
        return list(session.execute(query).scalars())


def record_poll(engine: Engine, batch_id: int, info: BatchInfo) -> None:
    """What the API says of an open batch (its counts, and ``ended`` with when); a closed row is left alone."""
    c = info.counts
    with engine.begin() as conn:
        conn.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id, col(Batch.status).in_(_POLLED))
            .values(
                status=BatchStatus(info.processing_status),
                processing_count=c.processing,
                succeeded_count=c.succeeded,
                errored_count=c.errored,
                canceled_count=c.canceled,
                expired_count=c.expired,
                ended_at=info.ended_at,
                expires_at=info.expires_at,
            )
        )


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
