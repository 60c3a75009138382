"""What the read side reads: reports, forecasts and quality measurements, each module named after what it reads.

Every query here returns small frozen dataclasses (never ORM objects), and groups in the database where it can:

- :mod:`~nightbatch.db.queries.selection`: :class:`Selection`, the ``usage_record`` rows a report covers;
- :mod:`~nightbatch.db.queries.runs`: when a run started, which run a report defaults to;
- :mod:`~nightbatch.db.queries.costs`: the ledger summed per group, per day, and what could not be priced;
- :mod:`~nightbatch.db.queries.tasks`: billed tasks and how they ended;
- :mod:`~nightbatch.db.queries.cache`: cache tokens per batch and per run, and each batch's cache plan;
- :mod:`~nightbatch.db.queries.batches`: what a run's batches say needs attention;
- :mod:`~nightbatch.db.queries.quality`: checked attempts, shadow pairs and escalation attempts;
- :mod:`~nightbatch.db.queries.history`: a task type's past output per model (for forecasts);
- :mod:`~nightbatch.db.queries.queue`: the queued tasks a forecast prices.

Calibration verdicts and routes are read by :mod:`nightbatch.db.calibrations`; batch durations by
:mod:`nightbatch.db.durations`.
"""
