"""What a time limit in seconds is, checked alike by the library and the command line.

``Host(call_timeout=...)`` (``runtime.host_args.seconds``) and the command line's
``--timeout`` (``cli._seconds.positive_seconds``) take the same values and refuse the
rest, each in its own words: the library names its argument, the command line its
option (a usage error, exit code 2). Kept apart from both so that the command line
reads it without loading the host.
"""

from __future__ import annotations

import math

__all__ = ["is_seconds"]


def is_seconds(value: object, *, zero: bool = False) -> bool:
    """Whether ``value`` is a time limit: a finite ``int`` or ``float`` (not a ``bool``)
    above 0, or with ``zero`` at least 0 (``inf`` and ``nan`` are no amount of time)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 or (zero and value == 0))
    )
