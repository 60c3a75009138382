"""Quality gates: checks on outputs, escalation across model tiers, calibration and shadow sampling."""
