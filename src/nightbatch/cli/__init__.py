"""The ``nightbatch`` command line. Each sub-module holds one group of commands; this one assembles them.

Commands print what they did, and errors as one line naming the file, task or batch, never a traceback
for an error of ours. Exit codes: 0 ok, 1 a run with problems or a failed operation, 2 a usage or input
problem (see docs/operations.md).
"""

from __future__ import annotations

from nightbatch.cli import (
    db_cmds,
    demo_cmds,
    emulator_cmds,
    estimate_cmds,
    quality_cmds,
    queue_cmds,
    report_cmds,
    requeue_cmds,
    run_cmds,
    task_cmds,
)
from nightbatch.cli.app import app

_MODULES = (
    db_cmds,
    queue_cmds,
    requeue_cmds,
    task_cmds,
    estimate_cmds,
    run_cmds,
    demo_cmds,
    emulator_cmds,
    quality_cmds,
    report_cmds,
)
for module in _MODULES:
    module.register(app)

__all__ = ["app"]
