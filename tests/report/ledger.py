"""A hand-computed ledger: runs, tasks, batches and usage rows inserted directly, with known costs.

Prices are the packaged table's, in picodollars per token (USD/MTok x 1e6); batch halves every one:

    model    input  output  write 5m  write 1h  read
    haiku    1e6    5e6     1.25e6    2e6       0.1e6
    sonnet   3e6    15e6    3.75e6    6e6       0.3e6
    opus     5e6    25e6    6.25e6    10e6      0.5e6

Every ``cost_pusd`` below is worked out by hand in its comment, not by the code under test.

The selected run (``R2``, started 2026-11-20 01:00 UTC, rows billed that day):

    task  type    model   tier   input output w5m   w1h   read  cost (pusd)                        outcome
    t1    triage  haiku   batch  100   10     0     2000  0     50e6+25e6+2000e6   = 2_075e6       succeeded
    t2    triage  haiku   batch  100   10     0     0     2000  50e6+25e6+100e6    =   175e6       succeeded
    t3    triage  haiku   batch  100   10     0     0     2000  same as t2         =   175e6       failed output_check
    t4    draft   haiku   batch  500   200    1000  0     0     250e6+500e6+625e6  = 1_375e6       (escalated)
    t4    draft   sonnet  batch  500   300    0     0     0     750e6+2250e6       = 3_000e6       succeeded
    t5    draft   sonnet  batch  400   100    0     0     1000  600e6+750e6+150e6  = 1_500e6       succeeded
    -     priming sonnet  std    0     1      0     1000  0     15e6+6000e6        = 6_015e6
    -     calib.  opus    std    50    5      0     0     0     250e6+125e6        =   375e6
                                                                         actual = 14_690e6

Three earlier runs (H1..H3, 2026-11-17..19) and one later run (R3, 2026-11-21) hold cache history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert

from nightbatch.db.models import Batch, Run, Task, UsageRecord

HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-8"
E6 = 10**6


def at(day: int, hour: int = 2) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@dataclass
class Ledger:
    """Inserts rows with readable defaults and remembers their ids."""

    engine: Engine
    runs: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)

    def _insert(self, table: Any, **values: Any) -> int:
        with self.engine.begin() as conn:
            key = conn.execute(insert(table).values(**values)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def run(self, name: str, started: datetime) -> int:
        self.runs[name] = self._insert(Run, kind="nightly", parameters={}, status="succeeded", started_at=started)
        return self.runs[name]

    def task(self, name: str, task_type: str, status: str, error_type: str | None = None) -> int:
        self.tasks[name] = self._insert(
            Task, task_type=task_type, payload={}, idempotency_key=name, status=status, error_type=error_type
        )
        return self.tasks[name]

    def batch(self, name: str, run: str, model: str, ttl: str | None = "1h") -> int:
        self.batches[name] = self._insert(
            Batch, provider_batch_id=f"msgbatch_{name}", model=model, status="ingested", run_id=self.runs[run],
            cache_ttl=ttl,
        )  # fmt: skip
        return self.batches[name]

    def usage(
        self,
        *,
        run: str,
        model: str,
        cost: int,
        created: datetime,
        task: str | None = None,
        batch: str | None = None,
        tier: str = "batch",
        purpose: str = "task",
        inp: int = 0,
        out: int = 0,
        w5m: int = 0,
        w1h: int = 0,
        read: int = 0,
    ) -> int:
        return self._insert(
            UsageRecord,
            task_id=self.tasks[task] if task else None,
            batch_id=self.batches[batch] if batch else None,
            run_id=self.runs[run],
            model=model,
            service_tier=tier,
            input_tokens=inp,
            output_tokens=out,
            cache_write_5m_tokens=w5m,
            cache_write_1h_tokens=w1h,
            cache_read_tokens=read,
            price_version="2026-11-01",
            cost_pusd=cost,
            purpose=purpose,
            created_at=created,
        )


def history_run(ledger: Ledger, name: str, day: int, *, triage: tuple[int, int], draft: tuple[int, int]) -> None:
    """A run whose triage and draft task responses had (read, write) cache tokens; costs are irrelevant here."""
    ledger.run(name, at(day, 1))
    for task_type, (read, write) in (("triage", triage), ("draft", draft)):
        task = f"{name}-{task_type}"
        ledger.task(task, task_type, "succeeded")
        ledger.usage(run=name, task=task, model=HAIKU, cost=1, created=at(day), read=read, w1h=write)


def build_ledger(engine: Engine) -> Ledger:
    """The ledger of the module docstring."""
    ledger = Ledger(engine)
    # Cache history: triage 10%, then 95%, 95%; draft 50% throughout.
    history_run(ledger, "H1", 17, triage=(100, 900), draft=(500, 500))
    history_run(ledger, "H2", 18, triage=(9500, 500), draft=(500, 500))
    history_run(ledger, "H3", 19, triage=(9500, 500), draft=(500, 500))

    ledger.run("R2", at(20, 1))
    ledger.batch("B1", "R2", HAIKU)
    ledger.batch("B2", "R2", HAIKU, ttl="5m")
    ledger.batch("B3", "R2", SONNET)
    for name, task_type, status, error in (
        ("t1", "triage", "succeeded", None),
        ("t2", "triage", "succeeded", None),
        ("t3", "triage", "failed", "output_check"),
        ("t4", "draft", "succeeded", None),
        ("t5", "draft", "succeeded", None),
    ):
        ledger.task(name, task_type, status, error)
    day = at(20)
    ledger.usage(run="R2", task="t1", batch="B1", model=HAIKU, inp=100, out=10, w1h=2000, cost=2_075 * E6, created=day)
    ledger.usage(run="R2", task="t2", batch="B1", model=HAIKU, inp=100, out=10, read=2000, cost=175 * E6, created=day)
    ledger.usage(run="R2", task="t3", batch="B1", model=HAIKU, inp=100, out=10, read=2000, cost=175 * E6, created=day)
    ledger.usage(run="R2", task="t4", batch="B2", model=HAIKU, inp=500, out=200, w5m=1000, cost=1_375 * E6, created=day)
    ledger.usage(run="R2", task="t4", batch="B3", model=SONNET, inp=500, out=300, cost=3_000 * E6, created=day)
    ledger.usage(
        run="R2", task="t5", batch="B3", model=SONNET, inp=400, out=100, read=1000, cost=1_500 * E6, created=day
    )
    ledger.usage(run="R2", model=SONNET, tier="standard", purpose="priming", out=1, w1h=1000, cost=6_015 * E6,
                 created=at(20, 1))  # fmt: skip
    ledger.usage(run="R2", model=OPUS, tier="standard", purpose="calibration", inp=50, out=5, cost=375 * E6,
                 created=day)  # fmt: skip

    # A later run must not count as history of R2.
    history_run(ledger, "R3", 21, triage=(0, 1000), draft=(0, 1000))
    return ledger


ACTUAL = 14_690 * E6
# (a) naive: task rows only, on opus at standard prices, all prompt tokens as input (5e6) + output (25e6):
#   t1,t2,t3: 2100*5e6 + 10*25e6 = 10_750e6 each; t4 haiku: 1500*5e6 + 200*25e6 = 12_500e6;
#   t4 sonnet: 500*5e6 + 300*25e6 = 10_000e6; t5: 1400*5e6 + 100*25e6 = 9_500e6
NAIVE = (3 * 10_750 + 12_500 + 10_000 + 9_500) * E6
# (b) routed: own models at standard, no cache: triage 3 x (2100*1e6 + 10*5e6) = 3 x 2_150e6;
#   t4 haiku 1500*1e6 + 200*5e6 = 2_500e6; t4 sonnet 500*3e6 + 300*15e6 = 6_000e6;
#   t5 1400*3e6 + 100*15e6 = 5_700e6; plus the calibration probe at its recorded 375e6
ROUTED = (3 * 2_150 + 2_500 + 6_000 + 5_700 + 375) * E6
# (c) batched: the task rows of (b) at half price, plus the calibration probe
BATCHED = ((3 * 2_150 + 2_500 + 6_000 + 5_700) // 2 + 375) * E6
