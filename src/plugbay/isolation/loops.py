"""The event loop plugbay runs its own loops on: uvloop when installed, else asyncio's.

uvloop (``pip install 'plugbay[fast]'``) runs the same asyncio code on libuv,
with transports written in C: a worker's side of a call costs about a third
less. plugbay uses it for the loops it owns, a worker's and ``plugbay run``'s;
an application embedding a :class:`~plugbay.Host` keeps whatever loop it runs
(plugbay works on both). ``PLUGBAY_LOOP=asyncio`` in the host's environment
turns it off, for the host and its workers alike.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

__all__ = ["LOOP_VARIABLE", "loop_factory", "loop_name", "run"]

#: "asyncio" keeps asyncio's own loop even when uvloop is installed
LOOP_VARIABLE: Final = "PLUGBAY_LOOP"

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop maker, or None for asyncio's (not installed, or turned off); decided
    once per process (a worker inherits the zygote's decision, made before its
    environment was cleared)."""
    global _decided, _chosen
    if not _decided:
        _chosen = _decide()
        _decided = True
    return _chosen


_decided = False
_chosen: Callable[[], asyncio.AbstractEventLoop] | None = None


def _decide() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if os.environ.get(LOOP_VARIABLE, "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None

    def new_loop() -> asyncio.AbstractEventLoop:
        # libuv tries io_uring for file operations when a loop is made; a sandboxed
        # worker's seccomp filter denies it (and reports each try). Asked not to, once:
        # libuv reads the variable when its first loop is made, and keeps the answer.
        had = os.environ.get("UV_USE_IO_URING")
        os.environ["UV_USE_IO_URING"] = "0"
        try:
            return uvloop.new_event_loop()
        finally:
            if had is None:
                del os.environ["UV_USE_IO_URING"]
            else:
                os.environ["UV_USE_IO_URING"] = had

    return new_loop


def loop_name() -> str:
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
