"""Isolation backends: how a plugin's code is run. One documented contract, several backends.

The manager does everything that is the same for every backend (checking
parameters and results, timeouts, metrics, errors); a backend only starts a
plugin, moves a call to it and back, and stops it. The contract, with what each
member raises and who calls it, is :mod:`plugbay.isolation.base`.
"""

from plugbay.isolation.base import (
    Backend,
    CallTimeout,
    CrashListener,
    NotSupported,
    PluginHandle,
    SecurityListener,
    deadline,
)
from plugbay.isolation.inline import InlineBackend

__all__ = [
    "Backend",
    "CallTimeout",
    "CrashListener",
    "InlineBackend",
    "NotSupported",
    "PluginHandle",
    "SecurityListener",
    "deadline",
]
