"""Shared pytest wiring. Each real service has its own fixture module, started once per run."""

pytest_plugins = [
    "tests.fixtures.cli",
    "tests.fixtures.db",
    "tests.fixtures.emulator",
    "tests.fixtures.s3",
    "tests.fixtures.prefect",
    "tests.fixtures.services",
]
