"""Waiting for something the host does on its own schedule, in tests.

``until`` polls a check until it holds and returns its value. The bound only turns a
hang into a failure that names what never happened; it is not a timed assertion.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def until(
    check: Callable[[], Any], what: str, seconds: float = 60.0, *, every: float = 0.02
) -> Any:
    """Poll ``check()`` (a value or an awaitable) until it is truthy; return it."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        await asyncio.sleep(every)


def until_sync(
    check: Callable[[], Any], what: str, seconds: float = 60.0, *, every: float = 0.02
) -> Any:
    """``until`` for a test without an event loop (a browser driven synchronously)."""
    end = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(every)
