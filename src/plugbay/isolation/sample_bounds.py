"""The bounds of a profile's sampling, in a module of their own: the command line's
options read them without loading the channel's frames (``isolation.sampling`` does)."""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_INTERVAL", "MAX_SECONDS", "MIN_INTERVAL"]

#: the longest a profile may run (the request is bounded; a typo of 3000 is refused)
MAX_SECONDS: Final = 300.0
#: the shortest pause between two samples
MIN_INTERVAL: Final = 0.001
#: the longest pause between two samples (the request is bounded as MAX_SECONDS is)
MAX_INTERVAL: Final = 1.0
