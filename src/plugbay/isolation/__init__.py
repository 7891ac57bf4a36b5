"""Isolation backends: how a plugin's code is run. One narrow protocol, several backends.

The manager does everything that is the same for every backend (checking
parameters and results, timeouts, metrics, errors); a backend only starts a
plugin, moves a call to it and back, and stops it.
"""

from plugbay.isolation.base import Backend, CallTimeout, PluginHandle, deadline
from plugbay.isolation.inline import InlineBackend

__all__ = ["Backend", "CallTimeout", "InlineBackend", "PluginHandle", "deadline"]
