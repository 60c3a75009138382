"""Paths and loaders for the production-shape checks (deployments, compose, infra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "infra" / "Dockerfile"


def load_json(relative: str) -> Any:
    return json.loads((ROOT / relative).read_text(encoding="utf-8"))


def load_prefect_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(PREFECT_FILE.read_text(encoding="utf-8"))
    return spec
