"""Phase 1 of ingest, streamed: the provider's results file copied to the object store as it is read.

Ingest reads the results once. Each chunk the provider sends is written to the archive
(``results/date=…/batch-<id>.jsonl``) as it is, byte for byte, and split into lines for processing: the
provider renders the next lines while this process works on the last ones, instead of the whole file
being downloaded first and read back. The archive is published once the file has been read to its end,
and its URI recorded by the ingest transaction.

An archive outlives the provider's 29-day retention, so results are never lost to a bug in processing
them: if ingest fails before the end of the file, :meth:`ResultsArchive.salvage` reads the rest, publishes
the archive and records it on its own. The next ingest then reads the archive, not the provider.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime
from typing import BinaryIO

from nightbatch.db.ingest_batches import record_results_uri
from nightbatch.db.ingest_writes import ingest_transaction
from nightbatch.db.models import Batch
from nightbatch.services import Services

__all__ = ["ResultsArchive", "results_key", "split_lines"]

log = logging.getLogger(__name__)


def results_key(batch_id: int, day: date) -> str:
    return f"results/date={day:%Y-%m-%d}/batch-{batch_id}.jsonl"


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines (without their ``\\n``) of a byte stream whose chunks may end mid-line."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk if rest else chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


class ResultsArchive:
    """The results file of one ended batch: read from the provider and archived, or read from the archive."""

    def __init__(self, services: Services, batch: Batch) -> None:
        assert batch.id is not None
        self.services, self.batch = services, batch
        self.key = results_key(batch.id, (batch.ended_at or datetime.now(UTC)).date())
        self._copy: Iterator[bytes] | None = None  # the download being archived, chunk by chunk
        self._publishing = ExitStack()
        self._broken = self._complete = False

    def open(self, stack: ExitStack) -> Iterator[bytes]:
        """The file's lines; ``stack`` holds the download (or the archive being read) open."""
        store = self.services.store
        # Only an archive recorded on this row counts: an object at the same key may be another database's
        # (batch ids restart when a database is recreated over the same store), so it is overwritten.
        if self.batch.results_uri:
            return iter(stack.enter_context(store.open_read(self.key)))
        assert self.batch.provider_batch_id is not None
        download = stack.enter_context(self.services.client.result_chunks(self.batch.provider_batch_id))
        # Unpublished unless publish() is reached: ``stack`` unwinding with an exception discards it.
        stack.enter_context(self._publishing)
        out = self._publishing.enter_context(store.writer(self.key, content_type="application/jsonl"))
        self._copy = self._copied(download, out)
        return split_lines(self._copy)

    def _copied(self, download: Iterator[bytes], out: BinaryIO) -> Iterator[bytes]:
        # Only the download's and the write's own errors land here: the consumer's are not thrown in.
        try:
            for chunk in download:
                out.write(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException:
            self._broken = True
            raise
        self._complete = True

    def publish(self) -> str | None:
        """Read anything left, publish the archive; its URI when it is new and must be recorded, else None."""
        if self._copy is None:
            return None  # read from the archive the row already records
        for _ in self._copy:  # normally at its end already; copies whatever processing did not read
            pass
        if not self._complete:  # a download that failed earlier: never publish part of a file
            raise RuntimeError(f"results of batch {self.batch.id} were not read to the end")
        self._copy = None
        self._publishing.close()
        return self.services.store.uri(self.key)

    def salvage(self) -> None:
        """After a failed ingest: archive the whole file anyway and record it, so the provider is not needed again."""
        if self._copy is None or self._broken:
            return  # nothing downloading, or the download itself broke: the next ingest starts over
        try:
            uri = self.publish()
            assert uri is not None  # a download was being archived: it is new
            assert self.batch.id is not None
            with ingest_transaction(self.services.engine) as conn:
                record_results_uri(conn, self.batch.id, uri)
        except Exception as exc:  # the ingest's own error is the one to raise; this one is only logged
            log.warning("batch %s: could not archive its results after a failed ingest: %s", self.batch.id, exc)
        else:
            log.warning("batch %s: ingest failed; its results are archived at %s", self.batch.id, uri)
