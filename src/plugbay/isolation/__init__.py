"""Isolation backends: how a plugin's code is run. One documented contract, several backends.

The manager does everything that is the same for every backend (checking
parameters and results, timeouts, metrics, errors); a backend only starts a
plugin, moves a call to it and back, and stops it. The contract, with what each
member raises and who calls it, is :mod:`plugbay.isolation.base`.

The names below load with their module on first use: ``plugbay run`` imports
:mod:`plugbay.isolation.zygote` to spawn the zygote at its first moment, before
the contract's modules (some 18 ms of imports) are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = "plugbay.isolation.inline" if name == "InlineBackend" else "plugbay.isolation.base"
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'plugbay.isolation' has no attribute {name!r}")
