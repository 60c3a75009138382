"""The Typer application and the error handling shared by every command."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from nightbatch.config import Settings
from nightbatch.db import Engine
from nightbatch.db.engine import make_engine, redact_url
from nightbatch.db.migrate import upgrade
from nightbatch.db.transient import first_line, is_database_error, is_transient
from nightbatch.errors import ConfigError, InputError, NightbatchError

__all__ = ["app", "console", "failure", "handle_errors", "load_settings"]


def _database_url() -> str:
    try:
        return redact_url(Settings().resolved_database_url)
    except Exception:  # the settings themselves are broken: that error is reported on its own
        return "the configured database"


def failure(exc: BaseException) -> tuple[int, str] | None:
    """The one-line message and exit code for an error of ours or of the database; None for a bug.

    Exit 2: a usage or configuration problem the user fixes (bad input, config, a database URL that
    names nothing, a schema newer than this nightbatch). Exit 1: a failure (the API, the store, a database
    that cannot be reached right now). Every database message names the URL with its password masked.
    """
    if isinstance(exc, ConfigError | InputError):
        return 2, f"[bold red]error:[/] {exc}"
    if isinstance(exc, NightbatchError):
        return 1, f"[bold red]failed:[/] {exc}"
    if is_database_error(exc):
        url, reason = _database_url(), first_line(exc)
        lowered = reason.lower()
        if "does not exist" in lowered and "database" in lowered:
            return 2, (f"[bold red]error:[/] database {url} does not exist ({reason}): create it, or fix "
                       "NIGHTBATCH_DATABASE_URL")  # fmt: skip
        if "password authentication failed" in lowered or ("role" in lowered and "does not exist" in lowered):
            return 2, f"[bold red]error:[/] database {url} refused the login ({reason}): fix the user or password"
        if "unable to open database file" in lowered:
            return 2, (f"[bold red]error:[/] cannot open the SQLite database {url}: check the path and its "
                       "permissions (NIGHTBATCH_DATABASE_URL)")  # fmt: skip
        if is_transient(exc):
            what = "check that the server runs and accepts connections, then run the command again"
            return (
                1,
                f"[bold red]failed:[/] database {url} is unreachable ({reason}): {what} (steps are safe to re-run)",
            )
        return 1, f"[bold red]failed:[/] database {url}: {reason}"
    return None


def _exit_for(exc: Exception) -> None:
    """Print ``exc`` as its one line and exit with its code; return (to re-raise) when it is not ours to word."""
    found = failure(exc)
    if found is None:
        return
    code, line = found
    err_console.print(line, highlight=False, soft_wrap=True)
    raise typer.Exit(code) from exc


class _Commands(TyperGroup):
    """Every command's errors go through :func:`failure`: one place, one line, one exit-code policy."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        try:
            return super().invoke(ctx)
        except Exception as exc:  # typer's own Exit/Abort map to None below and pass through
            _exit_for(exc)
            raise


app = typer.Typer(
    cls=_Commands,
    name="nightbatch",
    help="Run offline Claude workloads cheaply: queue, route, cache, batch, and account cost per task.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("nightbatch")
        except PackageNotFoundError:  # run from a checkout without installing
            from nightbatch import __version__ as installed
        typer.echo(f"nightbatch {installed}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print nightbatch's version and exit."
    ),
) -> None:
    """Run offline Claude workloads cheaply: queue, route, cache, batch, and account cost per task."""


console = Console(soft_wrap=True)  # paths and URLs stay on one line, copyable
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn nightbatch and database errors into one readable line and an exit code (see :func:`failure`).

    The application's command group does the same for every command (:class:`_Commands`); this decorator
    stays for commands called as plain functions.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            _exit_for(exc)
            raise

    return wrapper  # type: ignore[return-value]


def load_settings(**overrides: Any) -> Settings:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@contextmanager
def migrated_engine(settings: Settings | None = None) -> Iterator[Engine]:
    """The configured database, upgraded to the newest schema first, disposed on the way out."""
    url = (settings or load_settings()).resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
