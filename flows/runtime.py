"""Building the core's :class:`Services` inside a flow run, once per run."""

from __future__ import annotations

from nightbatch.config import Settings
from nightbatch.services import Services


def services_for(base_url: str | None) -> Services:
    return Services.from_settings(Settings(), base_url=base_url)
