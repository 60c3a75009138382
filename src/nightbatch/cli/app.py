"""The Typer application and the error handling shared by every command."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from nightbatch.config import Settings
from nightbatch.errors import ConfigError, InputError, NightbatchError

__all__ = ["app", "console", "handle_errors", "load_settings"]

app = typer.Typer(
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
    """Turn nightbatch errors into one readable line and an exit code, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ConfigError, InputError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from exc
        except NightbatchError as exc:
            err_console.print(f"[bold red]failed:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def load_settings(**overrides: Any) -> Settings:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
