"""A context whose plugin instance was stopped: what its parts answer then.

A context belongs to one instance of one version of a plugin. When that instance
is stopped (or replaced by a reload or an upgrade) the host closes its context
after ``cleanup``; a thread or callback the old instance left behind may still
hold it. Its store, events and tasks then refuse, on every backend: the new
version may have migrated the store, and the old code's writes would clobber it.
The refusal is made where the closed part would otherwise reopen (a closed
store's connection, a cleared emit sink), so a call that succeeds pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from plugbay.api.errors import PluginStateError

__all__ = ["Retired", "retired"]

#: the refusal of one thing (``"storage.set"``, ``"emit 'x'"``) asked of a closed context
Retired = Callable[[str], PluginStateError]


def retired(plugin: str, version: str) -> Retired:
    """The refusals of a context of ``plugin`` at ``version`` closed now."""
    stamp = time.time()
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))

    def refusal(doing: str) -> PluginStateError:
        return PluginStateError(
            f"{doing} refused: this context belongs to version {version} of "
            f"'{plugin}', whose instance was stopped (or reloaded) at {at}",
            plugin=plugin or None,
            hint="use the context the running instance's initialize was given "
            "(its self.context); stop threads and callbacks of an instance in its cleanup",
            details={"plugin_version": version, "stopped_at": stamp},
        )

    return refusal
