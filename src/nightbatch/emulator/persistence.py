"""Optional persistence of the emulator's state to one file, so an emulator restart keeps it.

Without ``persist_path`` everything lives in memory and an emulator restart loses every batch,
cache entry and ledger row — exactly what a client would see if the provider forgot its work.
With it, the state (batches, cache, ledger, id generator, simulated now) is pickled to that file
after changes (at most every ``persist_interval_seconds``, and on shutdown) and loaded at start;
the simulated clock resumes no earlier than the saved moment. Faults, the request log and custom
responders are not saved. The file is the emulator's own; never load one from an untrusted source.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nightbatch.emulator.state import EmulatorState

__all__ = ["load", "save_if_due"]

_FORMAT = 2  # 2: cache entries keyed by store, with their writers (issue 13)
_FIELDS = ("batches", "order", "cache", "ledger", "ids")


def save_if_due(state: EmulatorState, path: Path, *, force: bool = False) -> bool:
    """Write the state if it changed and the interval passed, or always with ``force``; return whether it wrote."""
    if not force and (not state.dirty or time.monotonic() - state.last_saved < state.config.persist_interval_seconds):
        return False
    snapshot: dict[str, Any] = {name: getattr(state, name) for name in _FIELDS}
    snapshot.update(format=_FORMAT, now=max(state.clock.now(), state.synced_to))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(snapshot, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    state.dirty = False
    state.last_saved = time.monotonic()
    return True


def load(state: EmulatorState, path: Path) -> bool:
    """Restore the state saved at ``path`` if the file exists; return whether it did."""
    if not path.exists():
        return False
    with path.open("rb") as stream:
        snapshot = pickle.load(stream)  # the emulator's own file, see module docstring
    if snapshot.get("format") != _FORMAT:
        raise ValueError(f"{path}: unsupported emulator state format {snapshot.get('format')!r}; delete the file")
    for name in _FIELDS:
        setattr(state, name, snapshot[name])
    state.clock.resume_at_least(float(snapshot["now"]))
    state.synced_to = float(snapshot["now"])
    state.dirty = False
    return True
