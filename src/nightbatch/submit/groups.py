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

Shadow requests (a second model's answer to a sampled task) are not tasks of the group: they never wait
and never pilot; in a group that waits they go out uncached. The shadow of a task that waits is not sent
at all this round: it is built again when its task goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from nightbatch.build.cache_ttl import CacheDecision, plan_group
from nightbatch.build.prefix import CacheTTL
from nightbatch.build.requests import BuiltRequest
from nightbatch.db.cache_entries import group_states, measured_hit_rate, pilot_minutes
from nightbatch.quality.shadow import is_shadow_id
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
    role: str | None  # "pilot", "fanout" or None
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
        real = [m for m in members if not is_shadow_id(m.custom_id)]
        shadows = [m for m in members if is_shadow_id(m.custom_id)]
        measured = measured_hit_rate(services.engine, *key)
        decision = plan_group(
            model=key[0],
            prices=services.prices,
            prefix_tokens=sizer.tokens(members[0].prefix),
            requests=len(members),
            mode=services.registry.get(members[0].task_type).cache.mode,
            hit_rate=None if measured is None else measured.rate,
            measured=None if measured is None else measured.as_record(),
            live_minutes=state.live_minutes(now),
            pilot_running=state.pilot_running,
            pilot_failures=state.pilot_failures,
            pilot_minutes=pilot_estimate,
            fanout_minutes=fanout_minutes,
            minutes_to_deadline=to_deadline,
            fanout_lag_minutes=fanout_lag_minutes,
        )
        plan.decisions[key] = decision
        if decision.option == "wait" or (decision.pilot and real):
            if decision.pilot:
                plan.sends.append(Send(key, real[:1], decision.ttl, "pilot", decision))
                plan.pilots += 1
                real = real[1:]
            plan.waiting.extend(r.task_id for r in real)
            if shadows:
                plan.sends.append(Send(key, shadows, None, None, decision))
        elif decision.cached and not decision.pilot:
            plan.sends.append(Send(key, members, decision.ttl, "fanout", decision))
        else:  # none, or a pilot with no real task to carry it (a group of shadow requests only)
            plan.sends.append(Send(key, members, None, None, decision))
    # A waiting task's shadow request is not sent now: it is built again with the task when the task goes
    # out after its pilot (shadow sampling is deterministic per task), so it is sent once, not twice.
    waiting = set(plan.waiting)
    for send in plan.sends:
        send.requests = [r for r in send.requests if not (is_shadow_id(r.custom_id) and r.task_id in waiting)]
    plan.sends = [send for send in plan.sends if send.requests]
    return plan
