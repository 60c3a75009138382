"""nightbatch: run offline Claude workloads through the Message Batches API, cheaply and exactly once.

The public façade; everything else is importable from its module (see the README's layout section).
"""

from nightbatch.config import Settings
from nightbatch.errors import (
    ConfigError,
    InputError,
    NightbatchError,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
    StateError,
    StorageError,
    TaskFileError,
    UnknownModelError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InputError",
    "NightbatchError",
    "PermanentProviderError",
    "ProviderError",
    "RetryableProviderError",
    "Settings",
    "StateError",
    "StorageError",
    "TaskFileError",
    "UnknownModelError",
    "__version__",
]
