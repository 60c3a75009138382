"""Calibration: send the same sample to every candidate model and route to the cheapest that meets the bar.

1. :func:`start_calibration` picks ``sample`` tasks of a type (lowest ids first, any status) and submits
   them, unchanged, to each candidate model through the submit path (one batch or more per model,
   ``purpose = calibration``, each naming the calibration in ``batch.calibration_id``; custom_ids of kind
   ``c``). The tasks themselves are not touched.
2. :func:`finish_calibration`, once every batch has ended, ingests them through the collect path (results
   archived, lines checked, each probe recorded as a ``task_attempt`` row and billed in the ledger with
   ``purpose = calibration``, no task changed), then scores each model from the recorded attempts by the
   type's checks and by agreement — with the payload's ``reference_field`` when the type names one, else
   with the top candidate's answers — and prices them from their ledger rows.
3. The cheapest model whose pass rate (and agreement, when measured) reaches the type's
   ``routing.threshold`` is recommended; :func:`apply_calibration` makes it the type's route. Below the
   bar everywhere, nothing is recommended.

Candidates are ordered by tier, then by price (output, then input), so two models of one tier side by
side (Haiku 4.5 and Haiku 5.5) are tried cheapest first. Each is sent the type's own settings (thinking,
effort, structured output where the model supports it), and priced from the usage it returned, so the
newer tokenizer's larger counts and any thinking are in its measured cost per task, at the prices in
force when its batch ended.
"""

from nightbatch.calibrate.score import ModelScore
from nightbatch.calibrate.stage import apply_calibration, finish_calibration, start_calibration

__all__ = ["ModelScore", "apply_calibration", "finish_calibration", "start_calibration"]
