"""No credentials in the files a team copies and commits: deployments, compose, infra, .env.example, the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deployments.support import ROOT

PATTERNS = {
    "Anthropic API key": re.compile(r"sk-ant-"),
    "AWS access key id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"),
    "AWS secret access key": re.compile(
        r"aws_secret_access_key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])", re.IGNORECASE
    ),
}


def _scanned_files() -> list[Path]:
    files = [ROOT / "docker-compose.yml", ROOT / ".env.example", ROOT / "docs" / "production.md"]
    for folder in ("deployments", "infra"):
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    return files


def find_secrets(text: str) -> list[str]:
    return [name for name, pattern in PATTERNS.items() if pattern.search(text)]


def test_the_scan_covers_the_production_files():
    names = {p.relative_to(ROOT).as_posix() for p in _scanned_files()}
    assert {
        "deployments/prefect.yaml",
        "docker-compose.yml",
        ".env.example",
        "infra/Dockerfile",
        "infra/aws/iam-policy.json",
        "infra/postgres/init-databases.sh",
    } <= names


@pytest.mark.parametrize("path", _scanned_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_credentials(path):
    assert find_secrets(path.read_text(encoding="utf-8")) == [], f"{path.relative_to(ROOT)} holds a credential"


def test_the_scan_finds_planted_credentials():
    # Built at run time so that this file never holds anything that looks like a real credential.
    key_id = "AKIA" + "Q" * 16
    secret = "x" * 20 + "/" + "Y" * 19
    assert find_secrets("ANTHROPIC_API_KEY=" + "sk-" + "ant-api03-abc") == ["Anthropic API key"]
    assert find_secrets(f"id: {key_id}\n") == ["AWS access key id"]
    assert find_secrets(f"aws_secret_access_key = {secret}\n") == ["AWS secret access key"]
    assert find_secrets(f'AWS_SECRET_ACCESS_KEY: "{secret}"') == ["AWS secret access key"]
    assert find_secrets("AWS_SECRET_ACCESS_KEY: ${NIGHTBATCH_S3_SECRET_ACCESS_KEY:?set it in .env}") == []
