"""A Wasm module's ``plugbay.event`` request: a plugin event, as any plugin's emit is
(``runtime.plugin_events``). Its data is measured as an emit's payload is
(``api._events``) on the instance's thread; the host's loop then checks it as it checks
an inline plugin's or a worker's (``PluginEvents.admit``: declared under ``[events]
emits``, a mapping, within :data:`~plugbay.api._events.MAX_PAYLOAD`) and publishes it
to the plugins that listen. The module waits for the check only, never on listeners; a
refusal is the host's own (passed on by the module, it is told as the host's)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, Final, Protocol

import msgspec

from plugbay.api._events import MAX_PAYLOAD
from plugbay.api.errors import PlugbayError
from plugbay.isolation._wasm_requests import fail
from plugbay.isolation.refusals import Refusals

__all__ = ["PluginEmits", "event_request"]

#: seconds the module waits for the host's loop to check its event (one turn of it)
_CHECK_WAIT: Final = 30.0
#: publishing events, kept until done (a task only the loop refers to may be collected)
_publishing: set[asyncio.Task[int]] = set()


class PluginEmits(Protocol):
    """The host's plugin events (``runtime.plugin_events.PluginEvents``), as seen here."""

    def admit(
        self, plugin_id: str, name: object, payload: object, oversized: object = None
    ) -> str: ...

    async def publish(self, name: str, payload: dict[str, Any], *, source: str = "host") -> int: ...


def event_request(
    plugin_id: str,
    request: dict[str, Any],
    events: Callable[[], PluginEmits] | None,
    loop: asyncio.AbstractEventLoop | None,
    refusals: Refusals,
) -> dict[str, Any]:
    """``{"name", "data"}`` from plugin ``plugin_id``'s module (on its instance's thread):
    checked and published on the host's ``loop``; the answer the module reads."""
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
    if events is None or loop is None:
        return {"ok": None}
    oversized = size if size > MAX_PAYLOAD else None  # refused by the host, by its size
    try:
        checked = asyncio.run_coroutine_threadsafe(
            _admitted(events(), plugin_id, name, data, oversized), loop
        )
        checked.result(timeout=_CHECK_WAIT)
    except PlugbayError as exc:
        return {"error": refusals.issue(plugin_id, exc).to_dict()}
    except (RuntimeError, concurrent.futures.CancelledError):  # the host's loop is closed
        return fail("the host is stopping: the event was not emitted")
    except concurrent.futures.TimeoutError:
        checked.cancel()
        return fail(f"the host did not take the event within {_CHECK_WAIT:g} s")
    return {"ok": None}


async def _admitted(
    events: PluginEmits, plugin_id: str, name: str, data: Any, oversized: int | None
) -> None:
    """On the host's loop: refused as any plugin's emit is, or published, its listeners
    served after the module has its answer."""
    kind = events.admit(plugin_id, name, data, oversized)
    task = asyncio.get_running_loop().create_task(events.publish(kind, data, source=plugin_id))
    _publishing.add(task)
    task.add_done_callback(_publishing.discard)
