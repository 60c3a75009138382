"""Running a Prefect flow from the CLI: a sane Prefect environment, a pre-flight check, the final state.

Prefect reads its settings when first imported, so :func:`prepare_prefect` runs before any ``flows``
import: with no ``PREFECT_API_URL`` the flow runs on a temporary local server whose home is under
nightbatch's own folder (not ``~/.prefect``), without telemetry, with a startup timeout a loaded machine
meets and with Prefect's per-run INFO logs kept out of the terminal (our summary says what matters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nightbatch.config import Settings, environ, export_to_environment
from nightbatch.errors import ConfigError, RunFailedError
from nightbatch.outcome_policy import EXIT_OK, EXIT_PROBLEMS

__all__ = ["FlowResult", "prepare_prefect", "require_api", "run_flow"]


def prepare_prefect(settings: Settings) -> None:
    """Defaults for the Prefect variables the Makefile sets, each only when unset."""
    env = environ()
    home = (settings.home / "prefect").resolve()
    defaults = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",  # the client-side switch: without it Prefect prints a telemetry notice
    }
    missing = {k: v for k, v in defaults.items() if not env.get(k)}
    if "PREFECT_HOME" in missing:
        home.mkdir(parents=True, exist_ok=True)  # Prefect creates only the last folder, and warns otherwise
    export_to_environment(missing)


def require_api(settings: Settings) -> None:
    """Say in one line, before Prefect starts, that there is no API to talk to."""
    if settings.api_key_value() is None and not settings.anthropic_base_url and not settings.api_key_secret_block:
        raise ConfigError(
            "no ANTHROPIC_API_KEY and no ANTHROPIC_BASE_URL: set the key, or run `nightbatch emulator serve` "
            "and point ANTHROPIC_BASE_URL at it (`nightbatch demo` / `make run` do this for you)"
        )


@dataclass(frozen=True)
class FlowResult:
    """A flow run's final state, read without raising: ok or not, its message and its returned data."""

    ok: bool
    message: str
    data: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_PROBLEMS


def run_flow(flow: Any, *args: Any) -> FlowResult:
    """Run ``flow`` to its final state (Completed or Failed by the outcome policy, or a crash)."""
    state = flow(*args, return_state=True)
    data = state.result(raise_on_failure=False)
    if isinstance(data, RunFailedError):  # the outcome policy's verdict, with the run's totals
        data = data.totals
    elif isinstance(data, BaseException):
        # The flow crashed (not a policy verdict): let the error handling of the CLI name it.
        raise data
    return FlowResult(ok=bool(state.is_completed()), message=str(state.message or ""), data=dict(data or {}))
