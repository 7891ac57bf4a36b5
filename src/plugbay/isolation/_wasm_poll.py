"""WASI preview 1 ``poll_oneoff`` for a core module, answered by the host.

wasmtime's own ``poll_oneoff`` sleeps on the instance's thread where neither an epoch
deadline nor anything else of the host reaches it: a module that calls ``sleep(60)``
would hold its call, and every call queued behind it, for a minute, whatever its
timeout. This one reads the module's subscriptions and sleeps through the handle
(``HostImports.sleep``), which wakes it when the call is interrupted; the epoch
deadline, already past by then, stops the module as soon as it runs again.

What a module in plugbay's sandbox can poll: clocks (realtime and monotonic), and
files, the standard streams and preopened directories, which are always ready (as
wasmtime reports them). So a subscription to a descriptor is answered at once, as
ready, and only a poll of clocks alone sleeps, until the earliest of them.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any, Final

__all__ = ["Poller"]

#: subscription: userdata u64, tag u8 (0 clock, 1 fd_read, 2 fd_write), then the clock's
#: id u32 (or the fd), timeout u64, precision u64, flags u16 (1: the timeout is absolute)
_SUBSCRIPTION: Final = struct.Struct("<QB7xI4xQQH6x")
#: event: userdata u64, error u16, type u8, then fd_readwrite's nbytes u64 and flags u16
_EVENT: Final = struct.Struct("<QHB5xQH6x")
_CLOCK, _FD_READ, _FD_WRITE = 0, 1, 2
_REALTIME, _MONOTONIC = 0, 1
_ABSTIME: Final = 1
_EFAULT: Final = 21
_EINVAL: Final = 28


class Poller:
    """``poll_oneoff`` for one instance: ``sleep`` is the handle's (interruptible);
    ``monotonic_base`` the host's ``time.monotonic_ns()`` when the instance's WASI
    context began, where its monotonic clock reads 0."""

    __slots__ = ("_base", "_sleep")

    def __init__(self, sleep: Callable[[float], None], monotonic_base: int) -> None:
        self._sleep = sleep
        self._base = monotonic_base

    def poll_oneoff(self, caller: Any, subs: int, events: int, count: int, written: int) -> int:
        """The WASI call: an errno (0: the events are written)."""
        memory = caller["memory"]
        size = memory.data_len(caller)
        if count <= 0:
            return _EINVAL
        need = ((subs, _SUBSCRIPTION.size * count), (events, _EVENT.size * count), (written, 4))
        if any(at < 0 or at + length > size for at, length in need):
            return _EFAULT
        raw = bytes(memory.read(caller, subs, subs + _SUBSCRIPTION.size * count))
        answered = self._answer(
            [_SUBSCRIPTION.unpack_from(raw, i * _SUBSCRIPTION.size) for i in range(count)]
        )
        out = b"".join(
            _EVENT.pack(userdata, error, kind, 0, 0) for userdata, error, kind in answered
        )
        memory.write(caller, out, events)
        memory.write(caller, len(answered).to_bytes(4, "little"), written)
        return 0

    def _answer(self, subscriptions: list[tuple[int, ...]]) -> list[tuple[int, int, int]]:
        """``(userdata, error, type)`` of each subscription that is ready, after waiting
        for the earliest clock when none is ready at once."""
        ready: list[tuple[int, int, int]] = []
        clocks: list[tuple[float, int]] = []
        for userdata, tag, ident, timeout, _precision, flags in subscriptions:
            if tag in (_FD_READ, _FD_WRITE):
                ready.append((userdata, 0, tag))
            elif tag != _CLOCK or ident not in (_REALTIME, _MONOTONIC):
                ready.append((userdata, _EINVAL, tag))
            else:
                clocks.append((self._seconds_until(ident, timeout, flags), userdata))
        if not ready and clocks:
            first = min(delay for delay, _ in clocks)
            if first > 0:
                self._sleep(first)
            ready = [(userdata, 0, _CLOCK) for delay, userdata in clocks if delay <= first]
        return ready

    def _seconds_until(self, clock: int, timeout: int, flags: int) -> float:
        if not flags & _ABSTIME:
            return timeout / 1e9
        now = time.time_ns() if clock == _REALTIME else time.monotonic_ns() - self._base
        return (timeout - now) / 1e9
