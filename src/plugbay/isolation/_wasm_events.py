"""A Wasm module's ``plugbay.event`` request: emitted in the plugin's own namespace
(``plugin.<id>.<name>``, never a host event), its data measured as any plugin's emit's
payload is (``api._events``). Data over :data:`~plugbay.api._events.MAX_PAYLOAD` is
refused in the host's words, as the host's own refusal (passed on by the module, it is
told as the host's), and nothing is emitted: as for an inline plugin or a worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec

from plugbay.api._events import MAX_PAYLOAD, payload_refused
from plugbay.isolation._wasm_requests import fail
from plugbay.isolation.refusals import Refusals

__all__ = ["event_request"]


def event_request(
    plugin_id: str,
    request: dict[str, Any],
    emit: Callable[..., None] | None,
    loop: asyncio.AbstractEventLoop | None,
    refusals: Refusals,
) -> dict[str, Any]:
    """``{"name", "data"}`` from plugin ``plugin_id``'s module (on its instance's thread):
    emitted on the host's ``loop``; the answer the module reads."""
    name = request.get("name")
    if not isinstance(name, str) or not name or len(name) > 128:
        return fail("an event has a name (a short string)")
    data = request.get("data")
    try:
        size = len(msgspec.msgpack.encode(data))
    except OverflowError:  # JSON allows integers no event payload can carry
        return fail(
            f"the data of event '{name}' holds an integer beyond 64 bits; the event was "
            "refused (send it as a string)",
            "ParameterError",
        )
    if size > MAX_PAYLOAD:
        refusal = refusals.issue(plugin_id, payload_refused(name, size, plugin_id))
        return {"error": refusal.to_dict()}
    if emit is not None and loop is not None:
        kind = f"plugin.{plugin_id}.{name}"
        loop.call_soon_threadsafe(lambda: emit(kind, source=plugin_id, data=data))
    return {"ok": None}
