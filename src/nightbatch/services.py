"""The outside world, wired once per process: database, object store, Claude API, config tables.

Every pipeline step takes a :class:`Services`; tests build one pointed at SQLite/PostgreSQL, the
moto S3 server and the emulator exactly as production builds one pointed at the real services.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from nightbatch.claude import ClaudeClient
from nightbatch.config import Settings, config_file_path
from nightbatch.db import Engine
from nightbatch.db.engine import make_engine
from nightbatch.errors import ConfigError
from nightbatch.pricing import PriceTable, load_price_table
from nightbatch.storage import ObjectStore, open_store
from nightbatch.tasktypes import TaskTypeRegistry, load_task_types

__all__ = ["Services", "default_worker_name"]


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Services:
    settings: Settings
    engine: Engine
    store: ObjectStore
    registry: TaskTypeRegistry
    prices: PriceTable
    worker: str
    base_url: str | None = None
    _client: ClaudeClient | None = None

    @property
    def client(self) -> ClaudeClient:
        """The API client, created on first use (enqueueing and reporting never need one)."""
        if self._client is None:
            key = self.settings.api_key_value()
            if key is None:
                if self.base_url is None:
                    raise ConfigError(
                        "no ANTHROPIC_API_KEY and no emulator: set the key, or start `nightbatch emulator serve` "
                        "and set ANTHROPIC_BASE_URL to it (`make run` does this for you)"
                    )
                key = "simulated-no-key"
            self._client = ClaudeClient(api_key=key, base_url=self.base_url)
        return self._client

    @classmethod
    def from_settings(cls, settings: Settings, *, base_url: str | None = None, worker: str | None = None) -> Services:
        """Build every port from ``settings``; ``base_url`` overrides the API address (the emulator)."""
        task_config = settings.task_config or config_file_path()
        registry = load_task_types(Path(task_config)) if Path(task_config).exists() else TaskTypeRegistry([])
        store = open_store(
            settings.resolved_output,
            endpoint_url=settings.s3_endpoint_url,
            sse=settings.s3_sse,
            kms_key_id=settings.s3_kms_key_id,
        )
        store.clean_leftovers()  # .part files a worker killed mid-write (e.g. mid-ingest) left behind
        return cls(
            settings=settings,
            engine=make_engine(settings.resolved_database_url),
            store=store,
            registry=registry,
            prices=load_price_table(settings.price_table),
            worker=worker or default_worker_name(),
            base_url=base_url or settings.anthropic_base_url,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self.engine.dispose()
