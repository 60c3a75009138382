"""Telling a database outage from a bug, and riding out a short one (a PostgreSQL restart, a failover).

A restarted server kills every open connection: the next statement on each fails with
``OperationalError`` (``server closed the connection unexpectedly``), and the pool's pre-ping
(:func:`nightbatch.db.engine.make_engine`) replaces dead connections on their next checkout. The steps
(submit, collect) are safe to re-run from their start: everything they change is guarded by
compare-and-set updates and leases. So a step that fails on a lost connection is retried whole, at its
boundary, a few times with a growing pause (:func:`retry_transient`); anything else is raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

__all__ = ["first_line", "is_database_error", "is_operational_error", "is_transient", "retry_transient"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a dying or restarting server, or a busy SQLite file, says; never a bad statement or bad data.
_TRANSIENT_HINTS = (
    "server closed the connection",
    "connection refused",
    "terminating connection",
    "connection is closed",
    "could not connect",
    "the database system is starting up",
    "the database system is shutting down",
    "consuming input failed",
    "ssl syscall error",
    "database is locked",
    "connection timeout",
    "timeout expired",
)


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line, without SQLAlchemy's statement dump and links."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def is_database_error(exc: BaseException) -> bool:
    """An error the database driver raised (reached us through SQLAlchemy), transient or not."""
    return isinstance(exc, DBAPIError)


def is_operational_error(exc: BaseException) -> bool:
    """An error in the database's operation (a lost connection, a locked file), not in our statement."""
    return isinstance(exc, OperationalError)


def is_transient(exc: BaseException) -> bool:
    """A lost or refused connection (worth retrying), not an error in what we asked."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        message = str(getattr(exc, "orig", exc)).lower()
        return any(hint in message for hint in _TRANSIENT_HINTS)
    return False


def retry_transient(step: Callable[[], T], *, what: str, attempts: int = 5, first_delay: float = 1.0) -> T:
    """Run ``step``; on a transient database error run it again (up to ``attempts`` times in all)."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except (OperationalError, InterfaceError) as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            log.warning("%s: database unavailable (%s); retrying in %.0f s", what, first_line(exc), delay)
            time.sleep(delay)
            delay = min(delay * 2, 60.0)
    raise AssertionError("unreachable")  # pragma: no cover
