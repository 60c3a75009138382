"""``nightbatch emulator serve``: the local emulator of the Anthropic API, in the foreground."""

from __future__ import annotations

from pathlib import Path

import typer

from nightbatch.cli.app import console, handle_errors

emulator_app = typer.Typer(help="The local emulator of the Messages, Batches and token-counting API.")


@emulator_app.command("serve")
@handle_errors
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8787, help="Port to listen on."),
    time_scale: float = typer.Option(60.0, help="Simulated seconds per real second (batches end sooner)."),
    seed: int = typer.Option(0, help="Seed for the canned responses and fault draws."),
    persist: Path | None = typer.Option(None, help="Keep state in this file, so an emulator restart keeps it."),
    debug: bool = typer.Option(False, help="Log one line per request."),
) -> None:
    """Serve the emulator until interrupted. Point ANTHROPIC_BASE_URL at it; any API key is accepted."""
    from nightbatch.emulator import EmulatorConfig, serve

    where = f"persisted to {persist}" if persist else "in memory (lost on restart)"
    console.print(f"SIMULATED Anthropic API on http://{host}:{port} (time x{time_scale:g}); state {where}")
    serve(
        EmulatorConfig(time_scale=time_scale, seed=seed),
        host=host,
        port=port,
        persist_path=persist,
        log_level="debug" if debug else "info",
    )


def register(app: typer.Typer) -> None:
    app.add_typer(emulator_app, name="emulator")
