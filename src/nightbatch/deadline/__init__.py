"""Deadlines: how long batches really take, and what happens to tasks a batch will not finish in time.

- :mod:`~nightbatch.deadline.durations`: measured batch durations by model, size and hour of submission,
  and the p50/p95 expected finish of what is in flight.
- :mod:`~nightbatch.deadline.policy`: each task type's ``on_deadline`` (``realtime`` | ``next_run`` |
  ``fail``), and the deadline step that cancels open batches at the margin and settles their tasks.
- :mod:`~nightbatch.deadline.realtime`: the real-time fallback (standard prices, purpose ``fallback``).
"""
