"""A faithful local emulator of the Anthropic Messages, Message Batches and token-counting API.

The official ``anthropic`` SDK talks to it through ``base_url`` exactly as to the real service:
same routes, JSON shapes, ids, headers, error bodies and status codes; batch lifecycle in simulated
time; a prompt-cache model; usage accounting and a billed ledger; deterministic responders; faults.
See ``docs/emulator.md``.

Typical use::

    from nightbatch.emulator import EmulatorConfig, run_emulator

    with run_emulator(EmulatorConfig(time_scale=0)) as emulator:
        client = anthropic.Anthropic(base_url=emulator.base_url, api_key="any")
        ...
        emulator.advance(3600)
"""

from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.faults import FaultRule, Faults, RequestFault
from nightbatch.emulator.ledger import LedgerEntry
from nightbatch.emulator.responders import DefaultResponder, Responder, ResponderRequest
from nightbatch.emulator.server import EmulatorServer, LedgerView, run_emulator, serve
from nightbatch.emulator.state import EmulatorState
from nightbatch.emulator.task_responders import ClassifierResponder, DateResponder, VerdictResponder
from nightbatch.emulator.tokenizer import text_tokens

__all__ = [
    "ClassifierResponder",
    "DateResponder",
    "DefaultResponder",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "FaultRule",
    "Faults",
    "LedgerEntry",
    "LedgerView",
    "RequestFault",
    "Responder",
    "ResponderRequest",
    "VerdictResponder",
    "run_emulator",
    "serve",
    "text_tokens",
]
