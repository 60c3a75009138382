"""``nightbatch db ...``: schema migrations (upgrade, downgrade, current, history)."""

from __future__ import annotations

import typer

from nightbatch.cli.app import console, handle_errors, load_settings
from nightbatch.cli.tables import print_table
from nightbatch.db.engine import redact_url
from nightbatch.db.migrate import current_revision, downgrade, head_revision, revisions, upgrade

db_app = typer.Typer(help="Database schema: apply or undo migrations, show the revisions.", no_args_is_help=True)


@db_app.command("upgrade")
@handle_errors
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    url = load_settings().resolved_database_url
    before = current_revision(url)
    upgrade(url, revision)
    after = current_revision(url)
    console.print(f"database {redact_url(url)}: {before or 'empty'} -> {after}")


@db_app.command("downgrade")
@handle_errors
def db_downgrade(
    revision: str = typer.Argument(..., help="Target revision (e.g. 0001), or `base` to drop every table."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (downgrading may drop columns and data)."),
) -> None:
    """Undo migrations down to REVISION. Columns and tables newer than it are dropped, with their data."""
    url = load_settings().resolved_database_url
    before = current_revision(url)
    if not yes and not typer.confirm(f"downgrade {redact_url(url)} from {before} to {revision}, dropping data?"):
        raise typer.Exit(1)
    downgrade(url, revision)
    console.print(f"database {redact_url(url)}: {before or 'empty'} -> {current_revision(url) or 'empty'}")


@db_app.command("current")
@handle_errors
def db_current() -> None:
    """Show the database's revision and the latest one this version knows."""
    url = load_settings().resolved_database_url
    console.print(f"database {redact_url(url)}: at {current_revision(url) or 'empty'}, latest {head_revision()}")


@db_app.command("history")
@handle_errors
def db_history() -> None:
    """Every migration this version ships, oldest first, and which one the database is at."""
    url = load_settings().resolved_database_url
    current = current_revision(url)
    rows = [[rev, down or "–", doc, "<- database" if rev == current else ""] for rev, down, doc in revisions()]
    print_table(console, ["revision", "after", "what", ""], rows, title="Migrations", text_cols=4)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
