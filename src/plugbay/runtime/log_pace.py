"""How often the host says a failure that repeats: the first, then at most one line an
interval, each saying how many went unsaid since the line before.

A rule by count (the first, then every thousandth) says a flood but hides a trickle:
one failure a minute for an hour is said once, and the operator never hears that it
goes on. A rule by time says both: a trickle line by line, a flood once an interval
with its count. The clock is read by the caller, on its failure path only (a
delivery that succeeds reads no clock).
"""

from __future__ import annotations

from typing import Final

__all__ = ["INTERVAL", "LogPace"]

#: seconds between two lines about the same repeating failure
INTERVAL: Final = 60.0


class LogPace:
    """One repeating failure's log lines (a listener's failures, a queue's drops)."""

    __slots__ = ("_next", "interval", "unsaid")

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._next = float("-inf")
        #: occurrences not said since the last line said
        self.unsaid = 0

    def due(self, now: float) -> int | None:
        """Whether an occurrence at ``now`` (a monotonic clock's seconds) is said: None
        when it is not (it counts among the unsaid), else how many went unsaid before it."""
        if now < self._next:
            self.unsaid += 1
            return None
        self._next = now + self.interval
        unsaid, self.unsaid = self.unsaid, 0
        return unsaid

    def settle(self) -> int:
        """The occurrences not said yet, taken to be said now (the caller says them: the
        source stops, and a trickle that ended within the interval would never be)."""
        unsaid, self.unsaid = self.unsaid, 0
        return unsaid
