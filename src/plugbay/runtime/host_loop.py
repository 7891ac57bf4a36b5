"""The host's own coroutines that start, swap or stop workers, or touch what belongs to
the host's loop (``host.reload``, ``host.upgrade``, ``host.grant``, ...), refused when
awaited on another event loop, as a call is (``runtime.serving``).

Awaited on another thread's loop, a reload would start the new version's worker there:
its channel, watchdog and tasks bound to the caller's loop, and the swap would wait on
the host's locks and futures from the wrong one (it failed, blaming the plugin's
``export_state``). Such a coroutine is checked once, before it does anything, in the
words a call gets, naming the coroutine to hand over
(``asyncio.run_coroutine_threadsafe(host.reload(...), host_loop)``). A reload takes
milliseconds, so the full check (the running loop, not only the thread) is no cost: it
also refuses one awaited on another loop of the host loop's own thread.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = ["on_host_loop"]

H = TypeVar("H", bound="Host")
P = ParamSpec("P")
R = TypeVar("R")


def on_host_loop(
    method: Callable[Concatenate[H, P], Awaitable[R]],
) -> Callable[Concatenate[H, P], Coroutine[Any, Any, R]]:
    """``method``, refused before it runs when awaited off the host's loop (see the
    module doc); a host not started, or stopped, is left to ``method`` to judge."""
    via = f"host.{method.__name__}(...)"

    @functools.wraps(method)
    async def on_its_loop(host: H, /, *args: P.args, **kwargs: P.kwargs) -> R:
        host.manager.serving.check_loop(f"await {via}", via)
        return await method(host, *args, **kwargs)

    return on_its_loop
