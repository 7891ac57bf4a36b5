"""The event loop plugbay runs its own loops on: uvloop when installed, else asyncio's.

uvloop (``pip install 'plugbay[fast]'``) runs the same asyncio code on libuv,
with transports written in C: a worker's side of a call costs about a third
less. plugbay uses it for the loops it owns, a worker's and ``plugbay run``'s
(a sandboxed worker's only when its host answers libuv's probe, see :func:`run`);
an application embedding a :class:`~plugbay.Host` keeps whatever loop it runs
(plugbay works on both). ``PLUGBAY_LOOP=asyncio`` in the host's environment
turns it off, for the host and its workers alike.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

__all__ = ["LOOP_VARIABLE", "loop_factory", "loop_name", "run", "sandboxed_uvloop"]

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

    return uvloop.new_event_loop


def loop_name() -> str:
    return "asyncio" if loop_factory() is None else "uvloop"


#: a sandboxed worker whose host answers its loop's io_uring probe (set as it is confined)
_sandboxed_uvloop = False


def sandboxed_uvloop(allowed: bool) -> None:
    """Whether this sandboxed process may run uvloop (``isolation.zygote``)."""
    global _sandboxed_uvloop
    _sandboxed_uvloop = allowed


def run(main: Coroutine[Any, Any, T], *, sandboxed: bool = False) -> T:
    """``asyncio.run`` on the chosen loop. A sandboxed worker runs uvloop only when told
    its host answers libuv's probe (:func:`sandboxed_uvloop`): libuv asks for an io_uring
    ring when it makes a loop, which the sandbox's seccomp filter denies and the host
    reports; the process backend's host knows that first denial for the runtime's own
    (``isolation.seccomp_notify``), other hosts keep such a worker on asyncio."""
    factory = None if sandboxed and not _sandboxed_uvloop else loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
