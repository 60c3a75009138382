"""``nightbatch emulator serve``: the local emulator of the Anthropic API, in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    batch_cache_model: Literal["isolated", "waves"] = typer.Option(
        "isolated",
        help="'isolated' (as documented and measured: batches and real-time calls do not share a cache, a batch "
        "reads only what earlier batches wrote) or 'waves' (legacy, for experiments: later waves of a batch read "
        "its first wave).",
    ),
    batch_cache_hit_probability: float = typer.Option(
        1.0,
        min=0.0,
        max=1.0,
        help="Chance a batch item reads a live entry (best effort; 0.3 = the docs' lower bound). Seeded.",
    ),
    debug: bool = typer.Option(False, help="Log one line per request."),
) -> None:
    """Serve the emulator until interrupted. Point ANTHROPIC_BASE_URL at it; any API key is accepted."""
    from nightbatch.emulator import EmulatorConfig, serve

    where = f"persisted to {persist}" if persist else "in memory (lost on restart)"
    console.print(f"SIMULATED Anthropic API on http://{host}:{port} (time x{time_scale:g}); state {where}")
    console.print(f"batch cache: {batch_cache_model}, reads succeed with probability {batch_cache_hit_probability:g}")
    serve(
        EmulatorConfig(
            time_scale=time_scale,
            seed=seed,
            batch_cache_model=batch_cache_model,
            batch_cache_hit_probability=batch_cache_hit_probability,
        ),
        host=host,
        port=port,
        persist_path=persist,
        log_level="debug" if debug else "info",
    )


def register(app: typer.Typer) -> None:
    app.add_typer(emulator_app, name="emulator")
