"""``nightbatch emulator serve``: the local emulator of the Anthropic API, in the foreground."""

from __future__ import annotations

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
) -> None:
    """Serve the emulator until interrupted. Point ANTHROPIC_BASE_URL at it; any API key is accepted."""
    from nightbatch.emulator import EmulatorConfig, serve

    console.print(f"SIMULATED Anthropic API on http://{host}:{port} (time x{time_scale:g}); state is in memory")
    serve(EmulatorConfig(time_scale=time_scale, seed=seed), host=host, port=port)


def register(app: typer.Typer) -> None:
    app.add_typer(emulator_app, name="emulator")
