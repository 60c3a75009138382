"""The one place custom_ids are built and parsed.

Every request nightbatch sends carries a custom_id that proves whose it is::

    <kind><task id>-<attempt>-<batch row id, 10 digits>-<installation id, 10 chars>
    t1234-1-0000000042-k3v9q0b2xa      a task's own request (attempt 1, in our batch row 42)
    s1234-1-0000000042-k3v9q0b2xa      a shadow request for task 1234 (quality sampling)
    c1234-0-0000000057-k3v9q0b2xa      a calibration probe of task 1234

* ``kind`` tells ingest what the result is for; the task id lets it find the task by primary key.
* The **batch row id** is the ``pending`` row written before ``create``. A provider batch whose results
  carry it names the exact row that created it, so an unconfirmed create is matched to its row by
  proof, not by size and time.
* The **installation id** is made once per database (:mod:`nightbatch.db.installation`). Two nightbatch
  databases sharing one API workspace (staging and production on one key, two teams) see each other's
  batches in the list endpoint; only a batch whose custom_ids carry our installation id is ours.

The row id is not known when requests are built (packing decides the batches), so requests are built
with a placeholder of the same length (:data:`UNBOUND_ROW`, :data:`UNBOUND_INSTALLATION`) and bound when
the pending row is written (:func:`bind`): sizes computed while packing stay exact.

Within ``^[a-zA-Z0-9_-]{1,64}$`` (the API's rule): at most 1 + 12 + 1 + 3 + 1 + 10 + 1 + 10 = 39 chars.
Older custom_ids (``t1234-1``, ``s1234-1``, ``c1234``) still parse, with no row and no installation: they
can be ingested from batches we recorded, but never prove ownership of an unrecorded batch.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "INSTALLATION_ID_LENGTH",
    "CustomId",
    "Kind",
    "bind",
    "build",
    "calibration_task_id",
    "is_shadow",
    "named_in",
    "new_installation_id",
    "parse",
    "require",
    "shadow_task_id",
    "task_id",
]

ROW_DIGITS = 10
INSTALLATION_ID_LENGTH = 10
UNBOUND_ROW = 0
UNBOUND_INSTALLATION = "0" * INSTALLATION_ID_LENGTH
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_FULL = re.compile(r"^([tsc])(\d{1,12})-(\d{1,3})-(\d{10})-([0-9a-z]{10})$")
_LEGACY = re.compile(r"^([tsc])(\d{1,12})(?:-(\d{1,3}))?$")
# A custom_id as it appears in a raw result line, found without parsing the JSON (the line may be damaged).
_IN_LINE = re.compile(r'"custom_id"\s*:\s*"([A-Za-z0-9_-]{1,64})"')
_IN_LINE_BYTES = re.compile(_IN_LINE.pattern.encode())


class Kind(StrEnum):
    TASK = "t"
    SHADOW = "s"
    CALIBRATION = "c"


@dataclass(frozen=True)
class CustomId:
    kind: Kind
    task_id: int
    attempt: int
    row: int | None = None  # our pending batch row that sent it (None: an older custom_id)
    installation: str | None = None

    def belongs_to(self, installation: str) -> bool:
        return self.installation == installation and self.row is not None


def new_installation_id() -> str:
    """A fresh installation id: 10 random base-36 characters (about 51 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(INSTALLATION_ID_LENGTH))


def build(kind: Kind, task_id: int, attempt: int, *, row: int = UNBOUND_ROW, installation: str | None = None) -> str:
    """A custom_id; without ``row`` and ``installation`` an unbound one, to :func:`bind` later."""
    if not 0 <= row < 10**ROW_DIGITS:
        raise ValueError(f"batch row id {row} does not fit the custom_id scheme")
    owner = installation or UNBOUND_INSTALLATION
    if len(owner) != INSTALLATION_ID_LENGTH or not owner.isalnum():
        raise ValueError(f"bad installation id {owner!r}")
    return f"{kind.value}{task_id}-{attempt}-{row:0{ROW_DIGITS}d}-{owner}"


def bind(custom_id: str, *, row: int, installation: str) -> str:
    """``custom_id`` with its batch row and installation filled in (same length as the unbound one)."""
    parsed = require(custom_id)
    return build(parsed.kind, parsed.task_id, parsed.attempt, row=row, installation=installation)


def parse(custom_id: str) -> CustomId | None:
    """What a custom_id says, or None when it is not of our making (another tool's, or damaged)."""
    full = _FULL.match(custom_id)
    if full:
        kind, task, attempt, row, owner = full.groups()
        return CustomId(Kind(kind), int(task), int(attempt), int(row), owner)
    legacy = _LEGACY.match(custom_id)
    if legacy:
        kind, task, attempt = legacy.groups()
        return CustomId(Kind(kind), int(task), int(attempt or 0))
    return None


def require(custom_id: str) -> CustomId:
    """What a custom_id of ours says; :class:`ValueError` naming it when it is not one of ours."""
    parsed = parse(custom_id)
    if parsed is None:
        raise ValueError(f"not one of our custom_ids: {custom_id!r}")
    return parsed


def named_in(line: str | bytes) -> str | None:
    """The custom_id a raw result line names, found without parsing it as JSON (a damaged line still
    names its request); None when no custom_id can be read. Any well-formed custom_id, ours or not."""
    if isinstance(line, bytes):
        found = _IN_LINE_BYTES.search(line)
        return found.group(1).decode() if found else None
    match = _IN_LINE.search(line)
    return match.group(1) if match else None


def _head_task(custom_id: str, kind: Kind) -> int | None:
    # Ingest asks this for every result line: the head alone, no regex.
    head = custom_id.partition("-")[0]
    digits = head[1:]
    if head[:1] == kind.value and digits.isascii() and digits.isdigit() and len(digits) <= 12:
        return int(digits)
    return None


def task_id(custom_id: str) -> int | None:
    """The task a routine (kind ``t``) custom_id names, or None."""
    return _head_task(custom_id, Kind.TASK)


def shadow_task_id(custom_id: str) -> int | None:
    """The task a shadow custom_id names, or None when it is not one."""
    return _head_task(custom_id, Kind.SHADOW)


def calibration_task_id(custom_id: str) -> int | None:
    """The task a calibration probe's custom_id names, or None when it is not one."""
    return _head_task(custom_id, Kind.CALIBRATION)


def is_shadow(custom_id: str) -> bool:
    return custom_id.startswith(Kind.SHADOW.value)
