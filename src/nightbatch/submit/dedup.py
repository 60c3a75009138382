"""De-duplication within one submit: identical requests are sent once, their twins share the result.

Two requests are identical when their task type, model and rendered params are (the digest of the
canonical JSON of the Messages params without a cache marker; custom_ids differ by construction and are
not part of it).
Of each set the first claimed task is the **leader** and goes out; the others (**twins**) stay claimed
until the leader's batch is created, then are linked to it (:func:`nightbatch.db.twins.link_twins`) and
settled by ingest from the leader's result. A twin whose leader did not go out (its group waits for a
pilot, the budget stopped it, the create failed) is given back to the queue, never left to lapse. A type
with ``dedupe = false`` sends every request; shadow requests are never de-duplicated, and a twin's shadow
is dropped with it (its leader's shadow measures the same request).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nightbatch import custom_ids
from nightbatch.build.prefix import canonical_json
from nightbatch.build.requests import BuiltRequest
from nightbatch.db.twins import link_twins, record_digests
from nightbatch.queue.claim import release
from nightbatch.services import Services
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["Twins", "request_digest", "split_twins"]

log = logging.getLogger(__name__)


def request_digest(request: BuiltRequest) -> str:
    """What makes two requests the same: task type, model and rendered params (no cache marker, no custom_id).

    The task type is part of it because it decides how the output is read and checked.
    """
    return hashlib.sha256(request.task_type.encode() + b"\n" + canonical_json(request.params(None))).hexdigest()


@dataclass
class Twins:
    """The twins of one submit, by leader, until they are linked to their leader's batch or given back."""

    by_leader: dict[int, list[int]] = field(default_factory=dict)
    digests: dict[int, str] = field(default_factory=dict)  # every sent task's request digest (for reuse)
    linked: int = 0

    def pending(self, leaders: Iterable[int] | None = None) -> list[int]:
        chosen = self.by_leader if leaders is None else {k: self.by_leader.get(k, []) for k in leaders}
        return [twin for twins in chosen.values() for twin in twins]

    def after_batch(self, services: Services, batch_id: int, requests: list[BuiltRequest]) -> None:
        """A batch was created: link its leaders' twins, and keep the digests of its reusable requests."""
        leaders = [r.task_id for r in requests if not custom_ids.is_shadow(r.custom_id)]
        now = datetime.now(UTC)
        wanted = {leader: self.by_leader.pop(leader) for leader in leaders if leader in self.by_leader}
        if wanted:
            linked = link_twins(services.engine, batch_id, wanted, services.worker, now)
            self.linked += len(linked)
            done = set(linked)
            unlinked = [twin for twins in wanted.values() for twin in twins if twin not in done]
            if unlinked:
                release(services.engine, unlinked, services.worker)
        reusable = [
            (r.task_id, r.task_type, self.digests[r.task_id])
            for r in requests
            if not custom_ids.is_shadow(r.custom_id)
            and r.task_id in self.digests
            and services.registry.get(r.task_type).reuse_window_seconds
        ]
        record_digests(services.engine, batch_id, reusable, now)

    def release_rest(self, services: Services, keep: Iterable[int] = ()) -> int:
        """Give back every twin not linked (but those of the leaders in ``keep``, still to be linked)."""
        held = set(keep)
        leaders = [leader for leader in self.by_leader if leader not in held]
        twins = self.pending(leaders)
        for leader in leaders:
            del self.by_leader[leader]
        return len(release(services.engine, twins, services.worker)) if twins else 0


def split_twins(requests: list[BuiltRequest], registry: TaskTypeRegistry) -> tuple[list[BuiltRequest], Twins]:
    """The requests to send (leaders, and every request of a ``dedupe = false`` type) and the twins held back."""
    twins = Twins()
    first: dict[str, int] = {}
    kept: list[BuiltRequest] = []
    for request in requests:
        if custom_ids.is_shadow(request.custom_id):
            kept.append(request)
            continue
        digest = request_digest(request)
        twins.digests[request.task_id] = digest
        leader = first.get(digest) if registry.get(request.task_type).dedupe else None
        if leader is None:
            first.setdefault(digest, request.task_id)
            kept.append(request)
        else:
            twins.by_leader.setdefault(leader, []).append(request.task_id)
            twins.digests.pop(request.task_id)
    held = {t for ts in twins.by_leader.values() for t in ts}
    if held:  # a twin's shadow goes with it: its leader's shadow measures the same request
        kept = [r for r in kept if not (custom_ids.is_shadow(r.custom_id) and r.task_id in held)]
    return kept, twins
