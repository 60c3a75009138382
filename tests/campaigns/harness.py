"""Fresh, isolated runs for campaigns: a clean database, object store and emulator per run.

A campaign makes hundreds of runs inside one test, so it cannot lean on per-test fixtures: a
:class:`Sandbox` copies the migrated SQLite file (or truncates the PostgreSQL database) per run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from nightbatch.collect.poll import collect_step
from nightbatch.config import Settings
from nightbatch.db import make_engine, metadata
from nightbatch.emulator import EmulatorConfig, EmulatorServer
from nightbatch.errors import NightbatchError
from nightbatch.pricing import load_price_table
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore, ObjectStore
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types
from tests.campaigns.invariants import expire_leases, open_work, unrecorded_batches

PRICES = load_price_table()


@dataclass
class Run:
    """One run's database, object store and config."""

    url: str
    engine: Engine
    store: ObjectStore
    store_root: Path
    config: Path
    folder: Path

    def services(self, base_url: str, worker: str, *, lease_seconds: int = 60) -> Services:
        return Services(
            settings=Settings(anthropic_api_key=None, max_attempts=3, lease_seconds=lease_seconds),
            engine=self.engine,
            store=self.store,
            registry=load_task_types(self.config),
            prices=PRICES,
            worker=worker,
            base_url=base_url,
        )


class Sandbox:
    """Hands out clean runs on the test's database (``db_url``, already migrated and empty)."""

    def __init__(self, db_url: str, folder: Path, config: Path) -> None:
        self.backend = make_url(db_url).get_backend_name()
        self.folder, self.config = folder, config
        self._url = db_url
        self._count = 0
        if self.backend == "sqlite":
            database = make_url(db_url).database
            assert database is not None
            self._pristine = folder / "pristine.db"
            shutil.copyfile(database, self._pristine)

    def _fresh_url(self, folder: Path) -> str:
        if self.backend == "sqlite":
            target = folder / "nightbatch.db"
            shutil.copyfile(self._pristine, target)
            return f"sqlite:///{target}"
        wiper = make_engine(self._url, poolclass=NullPool)
        tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
        with wiper.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        wiper.dispose()
        return self._url

    @contextmanager
    def run(self) -> Iterator[Run]:
        self._count += 1
        folder = self.folder / f"run-{self._count}"
        folder.mkdir()
        url = self._fresh_url(folder)
        engine = make_engine(url)
        store_root = folder / "store"
        try:
            yield Run(url, engine, LocalObjectStore(store_root), store_root, self.config, folder)
        finally:
            engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def reset_emulator(emulator: EmulatorServer, seed: int, **config: object) -> None:
    emulator.reset(EmulatorConfig.model_validate({"seed": seed, "time_scale": 0.0, **config}))


def finish(services: Services, emulator: EmulatorServer, *, rounds: int = 8, age_leases: bool = True) -> list[str]:
    """A healthy worker finishes the work: rounds of submit, an hour of provider time, collect.

    Leases are aged before each round (time passes between rounds; a dead worker's claims lapse).
    Returns the errors the steps raised or reported (they are outcomes, not failures of the campaign).
    """
    errors: list[str] = []
    for _ in range(rounds):
        if age_leases:
            expire_leases(services.engine)
        try:
            submit_step(services)
        except NightbatchError as exc:
            errors.append(f"submit: {exc}")
        emulator.advance(3600)
        try:
            errors += collect_step(services).errors
        except NightbatchError as exc:
            errors.append(f"collect: {exc}")
        if open_work(services.engine) == (0, 0) and not unrecorded_batches(services.engine, services.client):
            break
    return errors
