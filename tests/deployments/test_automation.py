"""The example automation in deployments/ is one Prefect accepts and matches what the flows emit."""

from __future__ import annotations

from pathlib import Path

import yaml  # type: ignore[import-untyped]
from prefect.events.schemas.automations import AutomationCore, EventTrigger
from prefect.events.schemas.events import Resource

from flows import events

FILE = Path(__file__).resolve().parents[2] / "deployments" / "automation-failed-night.yaml"


def test_the_failed_night_automation_validates_and_matches_the_run_finished_event():
    automation = AutomationCore.model_validate(yaml.safe_load(FILE.read_text(encoding="utf-8")))
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.expect == {events.RUN_FINISHED}
    assert automation.actions[0].type == "send-notification"
    # The resource a failed night's event carries (see flows/events.py) matches; an ok night's does not.
    failed = {"prefect.resource.id": "nightbatch.run.nightly-enrichment.12", "prefect.resource.name": "run 12",
              "nightbatch.deployment": "nightly-enrichment", "nightbatch.outcome": "problems"}  # fmt: skip
    assert trigger.match.matches(Resource.model_validate(failed))
    assert not trigger.match.matches(Resource.model_validate({**failed, "nightbatch.outcome": "ok"}))
