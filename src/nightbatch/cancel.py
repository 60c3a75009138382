"""Canceling batches on the user's word: one batch, or every open batch of a run.

The cancel is recorded on the batch (who, when, why: the batch's ``error``, which "needs attention"
lists) before the API is asked, so a crash in between leaves a visible trace. Requests the API already
answered are still ingested and billed as usual; the canceled ones end ``canceled`` (or go back to the
queue with ``requeue``) when ``collect`` ingests the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from nightbatch.db.cancellations import cancelable_batches, record_cancel
from nightbatch.errors import InputError, ProviderError
from nightbatch.services import Services

__all__ = ["CancelReport", "cancel_batches"]


@dataclass
class CancelReport:
    canceled: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def cancel_batches(
    services: Services,
    *,
    batch_id: int | None = None,
    run_id: int | None = None,
    reason: str = "",
    requeue: bool = False,
) -> CancelReport:
    if (batch_id is None) == (run_id is None):
        raise InputError("give exactly one of a batch id or --run")
    targets = cancelable_batches(services.engine, batch_id=batch_id, run_id=run_id)
    if not targets:
        what = f"batch {batch_id}" if batch_id is not None else f"run {run_id}"
        raise InputError(f"{what}: no batch in progress to cancel (see `nightbatch status`)")
    report = CancelReport()
    now = datetime.now(UTC)
    for local_id, provider_id in targets:
        note = f"canceled by {services.worker} at {now:%Y-%m-%d %H:%M} UTC" + (f": {reason}" if reason else "")
        record_cancel(services.engine, local_id, note, requeue=requeue, when=now)
        try:
            services.client.cancel_batch(provider_id)
        except ProviderError as exc:
            report.errors.append(f"batch {local_id} ({provider_id}): {exc}")
            continue
        report.canceled.append(local_id)
    return report
