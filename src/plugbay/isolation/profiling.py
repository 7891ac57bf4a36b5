"""``plugbay profile``: run one call under cProfile inside the plugin's own backend.

Inline, the profiler wraps the call in the host's process; in a worker, the host
sends a ``Profile`` frame and the worker wraps the call there, so the figures are
those of the process the plugin really runs in. cProfile is deterministic (it
sees every function call), which is what one call needs; the report is the
functions by cumulative time, as ``pstats`` prints them.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Awaitable
from typing import Any

__all__ = ["profiled", "report"]

#: functions shown in a report
TOP = 30


def report(profiler: cProfile.Profile, *, top: int = TOP) -> str:
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)
    return buffer.getvalue().strip()


async def profiled(work: Awaitable[Any]) -> dict[str, Any]:
    """Await ``work`` under the profiler: ``{"value": result, "report": text}``."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        value = await work
    finally:
        profiler.disable()
    return {"value": value, "report": report(profiler)}
