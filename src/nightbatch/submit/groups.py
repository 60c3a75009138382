"""Per prefix group: what goes out now (uncached, a pilot, the fan-out), and which tasks wait.

For each (model, prefix hash) group of this round's built requests the planner
(:func:`nightbatch.build.cache_ttl.plan_group`) is given what the database knows: the group's batch-cache
state (:mod:`nightbatch.db.cache_entries`), its hit rate measured in earlier fan-out batches, how long
pilots have taken, and the time left before the run's deadline. Then:

- ``none``: every request goes out without a breakpoint;
- ``pilot_*``: ONE real task goes out alone with the breakpoint (a batch with ``cache_role = pilot``); the
  group's other tasks **wait**: they are released to the queue (through :func:`nightbatch.queue.claim.release`,
  which gives the claim's attempt back) and picked up again once the pilot is ingested;
- ``warm``: every request goes out with the breakpoint (``cache_role = fanout``) and reads;
- ``wait``: a pilot of this group is running; every task is released.

Shadow requests (a second model's answer to a sampled task) are not queued tasks: they cannot wait on their
own. The shadow of a task that waits is not sent this round: it is built again when its task goes out. A
group of shadow requests only pilots with one of them, and the tasks of the others wait with it, so that
their shadows read after the pilot (see :func:`_pilots_and_waiting`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from nightbatch import custom_ids
from nightbatch.build.cache_ttl import CacheDecision, plan_group
from nightbatch.build.prefix import CacheTTL
from nightbatch.build.requests import BuiltRequest
from nightbatch.db.cache_entries import group_states, measured_hit_rate, pilot_minutes
from nightbatch.db.models import CacheRole
from nightbatch.services import Services
from nightbatch.submit.plan import PrefixSizer

__all__ = ["DEFAULT_PILOT_MINUTES", "GroupPlan", "Send", "plan_sends"]

# Until a pilot was measured here: a one-request batch usually ends within minutes, but the provider only
# promises most batches within the hour (unverified figure; the measured maximum replaces it).
DEFAULT_PILOT_MINUTES = 15.0

GroupKey = tuple[str, str]


@dataclass
class Send:
    """Requests of one group that go out now, under one breakpoint TTL and cache role."""

    key: GroupKey
    requests: list[BuiltRequest]
    ttl: CacheTTL | None
    role: CacheRole | None  # None: the requests carry no breakpoint
    decision: CacheDecision


@dataclass
class GroupPlan:
    sends: list[Send] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # task ids that wait for their group's pilot
    decisions: dict[GroupKey, CacheDecision] = field(default_factory=dict)
    pilots: int = 0


def plan_sends(
    services: Services,
    requests: list[BuiltRequest],
    sizer: PrefixSizer,
    *,
    now: datetime,
    deadline: datetime | None,
    fanout_minutes: float,
    fanout_lag_minutes: float | None,
) -> GroupPlan:
    """Decide every group of ``requests`` (see the module docstring)."""
    groups: dict[GroupKey, list[BuiltRequest]] = {}
    for request in requests:
        groups.setdefault((request.model, request.prefix.hash), []).append(request)
    plan = GroupPlan()
    if not groups:
        return plan
    states = group_states(services.engine, list(groups))
    pilot_estimate = pilot_minutes(services.engine) or DEFAULT_PILOT_MINUTES
    to_deadline = None if deadline is None else (deadline - now).total_seconds() / 60
    for key, members in groups.items():
        state = states[key]
        measured = measured_hit_rate(services.engine, *key, now=now)
        plan.decisions[key] = plan_group(
            model=key[0],
            prices=services.prices,
            prefix_tokens=sizer.tokens(members[0].prefix),
            requests=len(members),
            mode=services.registry.get(members[0].task_type).cache.mode,
            hit_rate=None if measured is None else measured.rate,
            measured=None if measured is None else measured.as_record(),
            live_minutes=state.live_minutes(now),
            live_ttl_minutes=state.ttl_minutes,
            pilot_running=state.pilot_running,
            pilot_failures=state.pilot_failures,
            pilot_minutes=pilot_estimate,
            fanout_minutes=fanout_minutes,
            minutes_to_deadline=to_deadline,
            fanout_lag_minutes=fanout_lag_minutes,
        )
    pilots, waiting = _pilots_and_waiting(groups, plan.decisions)
    plan.waiting = sorted(waiting)
    plan.pilots = len(pilots)
    for key, members in groups.items():
        decision = plan.decisions[key]
        # A waiting task's shadow request is not sent now: it is built again with the task when the task goes
        # out (shadow sampling is deterministic per task), so it is sent once, not twice.
        rest = [m for m in members if m.task_id not in waiting and m is not pilots.get(key)]
        if key in pilots:
            plan.sends.append(Send(key, [pilots[key]], decision.ttl, CacheRole.PILOT, decision))
        if decision.cached and not decision.pilot:
            plan.sends.append(Send(key, rest, decision.ttl, CacheRole.FANOUT, decision))
        elif rest:  # none; or, beside a pilot or a wait, shadows of tasks that go out now: never cold-marked
            plan.sends.append(Send(key, rest, None, None, decision))
    plan.sends = [send for send in plan.sends if send.requests]
    return plan


def _pilots_and_waiting(
    groups: dict[GroupKey, list[BuiltRequest]], decisions: dict[GroupKey, CacheDecision]
) -> tuple[dict[GroupKey, BuiltRequest], set[int]]:
    """Each piloting group's pilot request, and the ids of the tasks that wait.

    A task group pilots with its first task; its other tasks wait, and so does every task of a group whose
    pilot is running. A group of shadow requests only (a sampled second model) pilots with the shadow of a
    task that goes out now; the tasks of its other shadows wait too, so that their shadows go out after the
    pilot and read (a shadow cannot wait on its own: it is not a queued task).
    """
    pilots: dict[GroupKey, BuiltRequest] = {}
    waiting: set[int] = set()
    shadow_only: list[GroupKey] = []
    for key, members in groups.items():
        decision = decisions[key]
        real = [m for m in members if not custom_ids.is_shadow(m.custom_id)]
        if decision.option == "wait":
            waiting.update(r.task_id for r in real)
        elif decision.pilot and real:
            pilots[key] = real[0]
            waiting.update(r.task_id for r in real[1:])
        elif decision.pilot:
            shadow_only.append(key)
    carried = {p.task_id for p in pilots.values()}
    for key in shadow_only:
        going = [m for m in groups[key] if m.task_id not in waiting]
        if len(going) < 2:
            continue  # nothing to hold back for: these shadows go out uncached with their tasks
        pilots[key] = going[0]
        carried.add(going[0].task_id)
        waiting.update(m.task_id for m in going[1:] if m.task_id not in carried)
    return pilots, waiting
