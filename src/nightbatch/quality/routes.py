"""Routes decided by measurement: the model each type's latest applied calibration chose.

The query lives in the database port (:func:`nightbatch.db.calibrations.calibrated_routes`). This name is kept
so that callers written against it still run; new code imports it from ``nightbatch.db.calibrations``.
"""

from __future__ import annotations

from nightbatch.db.calibrations import calibrated_routes

__all__ = ["calibrated_routes"]
