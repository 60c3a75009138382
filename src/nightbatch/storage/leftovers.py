"""Temporary ``.part`` files a killed writer left behind, and removing them on the next start.

A writer spools to a ``.part`` file (the local store in ``<root>/.nightbatch-tmp/``, the S3 store in the
system temp dir) and removes it when it publishes or fails; a SIGKILL leaves it. The name carries the
writer's host and pid (``…~<host>~<pid>~….part``) so the next process can tell a dead writer's file from
a live one's, even on an output folder shared between hosts:

* written on this host by a process that no longer exists: removed at once;
* older than :data:`MAX_AGE` (whoever wrote it; also names without the tag, from older versions): removed.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from pathlib import Path

__all__ = ["MAX_AGE", "clean_parts", "part_tag"]

log = logging.getLogger(__name__)

MAX_AGE = 24 * 3600.0
_TAG = re.compile(r"~([A-Za-z0-9.-]{1,64})~(\d{1,10})~")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "host"


def part_tag() -> str:
    """The writer's mark in a ``.part`` file's name."""
    return f"~{_host()}~{os.getpid()}~"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_parts(folder: Path, *, prefix: str = "", max_age: float = MAX_AGE) -> int:
    """Remove the dead writers' ``.part`` files in ``folder`` (names starting with ``prefix``); how many."""
    try:
        entries = [p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(".part")]
    except OSError:
        return 0  # no folder, nothing left behind
    host, now, removed = _host(), time.time(), 0
    for path in entries:
        tag = _TAG.search(path.name)
        try:
            dead = tag is not None and tag.group(1) == host and not _alive(int(tag.group(2)))
            if dead or now - path.stat().st_mtime > max_age:
                path.unlink()
                removed += 1
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    if removed:
        log.warning("removed %d temporary file(s) a killed writer left in %s", removed, folder)
    return removed
