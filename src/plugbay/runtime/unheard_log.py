"""What a plugin's log says of the events passed on unheard across a new version: which
events (the first few names, each with its count, then how many names more), for which
plugin, and which version does not listen to them.

One line for what one swap passed on (its listeners' queues, each passing on what it
held as it finds the new version, are gathered for :data:`GATHER` seconds), then at most
one line a minute (``runtime.log_pace``): what
went unheard meanwhile is kept, and named with the next line said, or when the plugin
leaves or the host stops (``say_kept``). Nothing here runs on
an event that is delivered.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from plugbay.runtime.log_pace import LogPace

__all__ = ["GATHER", "NAMED", "UnheardLog"]

#: seconds the events one swap passes on are gathered for, to be one line (a listener
#: waiting for its plugin's new version looks again every 0.05 s: ``runtime.activation``)
GATHER: Final = 0.25

#: the event names a line names at most (then "and N more")
NAMED: Final = 3


@dataclass(slots=True)
class _Note:
    """One plugin's events passed on unheard since its log last said so."""

    version: str = ""
    names: collections.Counter[str] = field(default_factory=collections.Counter)
    pace: LogPace = field(default_factory=LogPace)
    #: a line is being gathered, said in :data:`GATHER` seconds
    pending: bool = False


class UnheardLog:
    """The host's lines about unheard events, one pace per plugin."""

    __slots__ = ("_notes", "_now")

    def __init__(self, now: Callable[[], float]) -> None:
        #: the monotonic clock the pace is read on (at a line's turn only)
        self._now = now
        self._notes: dict[str, _Note] = {}

    def unheard(self, plugin: str, event: str, version: str) -> None:
        """``event``, queued for ``plugin``, was passed on: ``version`` does not listen."""
        note = self._notes.get(plugin)
        if note is None:
            note = self._notes[plugin] = _Note()
        note.names[event] += 1
        note.version = version
        if not note.pending:
            note.pending = True
            asyncio.get_running_loop().call_later(GATHER, self._say, plugin)

    def gathering(self, plugin: str) -> bool:
        """Whether a line about ``plugin`` is being gathered (not said yet)."""
        note = self._notes.get(plugin)
        return note is not None and note.pending

    def forget(self, plugin: str) -> None:
        """The plugin is no longer loaded: what it kept unsaid is said, then forgotten."""
        self._say(plugin, now=True)
        self._notes.pop(plugin, None)

    def say_kept(self) -> None:
        """The host stops: what each plugin kept unsaid (within the minute) is said."""
        for plugin in list(self._notes):
            self._say(plugin, now=True)

    def _say(self, plugin: str, *, now: bool = False) -> None:
        note = self._notes.get(plugin)
        if note is None:
            return
        note.pending = False
        if not note.names or (note.pace.due(self._now()) is None and not now):
            return  # kept, and named with the next line said
        total = sum(note.names.values())
        names = [f"{name} ({n})" for name, n in list(note.names.items())[:NAMED]]
        more = len(note.names) - NAMED
        listed = ", ".join(names) + (f" and {more} more" if more > 0 else "")
        logging.getLogger(f"plugbay.plugin.{plugin}").info(
            "%d %s queued for '%s' %s not delivered: %s for an earlier version, and "
            "version %s does not listen to %s; each went on to the next listener (counted "
            "as unheard)",
            total,
            "event" if total == 1 else "events",
            plugin,
            "was" if total == 1 else "were",
            "it waited" if total == 1 else "they waited",
            note.version,
            listed,
            extra={
                "plugbay_owner": plugin,
                "fields": {"source": "host", "unheard": total, "events": dict(note.names)},
            },
        )
        note.names.clear()
