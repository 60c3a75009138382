"""``nightbatch db ...``: schema migrations."""

from __future__ import annotations

import typer

from nightbatch.cli.app import console, handle_errors, load_settings
from nightbatch.db.engine import redact_url
from nightbatch.db.migrate import current_revision, head_revision, upgrade

db_app = typer.Typer(help="Database schema: apply migrations, show the current revision.", no_args_is_help=True)


@db_app.command("upgrade")
@handle_errors
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    url = load_settings().resolved_database_url
    before = current_revision(url)
    upgrade(url, revision)
    after = current_revision(url)
    console.print(f"database {redact_url(url)}: {before or 'empty'} -> {after}")


@db_app.command("current")
@handle_errors
def db_current() -> None:
    """Show the database's revision and the latest one this version knows."""
    url = load_settings().resolved_database_url
    console.print(f"database {redact_url(url)}: at {current_revision(url) or 'empty'}, latest {head_revision()}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
