"""A sandboxed plugin's ``context.events.emit``, measured as it is encoded.

The emit's frame is encoded once, in the worker; its length says whether the payload
may be over :data:`~plugbay.api._events.MAX_PAYLOAD` (the frame holds the payload, so
a frame within the bound holds a payload within it: one ``len`` on a normal emit;
only a frame over it has its payload measured alone, :func:`near_the_bound`), and the
encoded frame is what leaves (``frames.Channel.send_encoded``). A payload over the
bound stays in the worker: the host is asked for its refusal by the payload's size
alone, so the error is the host's own (``isolation.refusals``: passed on by the plugin,
it is told as the host's refusal, not the plugin's), in the host's words, and 1 MiB
never crosses the socket to be refused there. The host still measures what it gets.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from plugbay.api._events import MAX_PAYLOAD
from plugbay.isolation import frames
from plugbay.isolation.frames import MAX_FRAME

__all__ = ["EVENTS_TARGET", "OVERSIZED", "emit_encoder", "near_the_bound"]

#: the host's target for an emit (``runtime.plugin_events``; not imported: a worker)
EVENTS_TARGET: Final = "plugbay.events"

#: the key of an emit's params that carries, instead of the payload, its size in bytes
#: when the worker found it over the bound: the host answers with its refusal
OVERSIZED: Final = "oversized"

#: what encodes an emit's HostCall in the worker (``Worker.emit_event``)
emit_encoder: Final = msgspec.msgpack.Encoder()


def near_the_bound(body: bytes, call_id: int, name: str, payload: dict[str, Any]) -> bytes:
    """What leaves for an emit whose encoded HostCall, ``body``, is over the bound: it,
    when the payload measured alone is within it; else the small HostCall that asks the
    host for its refusal (the payload stays here)."""
    size = len(emit_encoder.encode(payload))
    if size > MAX_PAYLOAD:
        refusal = frames.HostCall(call_id, EVENTS_TARGET, name, {OVERSIZED: size})
        return emit_encoder.encode(refusal)
    if len(body) > MAX_FRAME:  # a payload within the bound, under a name of a megabyte
        raise frames.FrameError(
            f"a message of {len(body)} bytes is over the {MAX_FRAME}-byte frame limit"
        )
    return body
