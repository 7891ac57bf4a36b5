"""A Wasm module's ``plugbay.event`` request: a plugin event, as any plugin's emit is
(``runtime.plugin_events``). Its data is measured as an emit's payload is
(``api._events``) on the instance's thread; the host's loop then checks it as it checks
an inline plugin's or a worker's (``PluginEvents.admit``: declared under ``[events]
emits``, a mapping, within :data:`~plugbay.api._events.MAX_PAYLOAD`) and publishes it
to the plugins that listen. The module waits for the check only, never on listeners; a
refusal is the host's own (passed on by the module, it is told as the host's).

It waits no longer than its call may run: the call's timer is the host loop's, so a loop
that does not come to the check (blocked by a plugin, or stopping) does not come to the
timer either. At the call's deadline the instance thread stops waiting itself, withdraws
the event (nothing is emitted) and stops the call as its timer would (``_wasm_deadline``): the
caller gets the time-out and the instance is replaced."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import msgspec

from plugbay.api._events import MAX_PAYLOAD
from plugbay.api.errors import PlugbayError
from plugbay.isolation._wasm_deadline import Deadline
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
    due: Deadline,
) -> dict[str, Any]:
    """``{"name", "data"}`` from plugin ``plugin_id``'s module (on its instance's thread):
    checked and published on the host's ``loop``; the answer the module reads; its wait
    ends at the call's deadline (``due``), which stops the call when the check has not
    begun by then."""
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
    checked: concurrent.futures.Future[None] = concurrent.futures.Future()
    wait = min(_CHECK_WAIT, due.until - time.monotonic())
    try:
        loop.call_soon_threadsafe(_admit, checked, events, plugin_id, name, data, oversized)
    except RuntimeError:  # the host's loop is closed: only then is the host stopping
        return fail("the host is stopping: the event was not emitted")
    try:
        checked.result(timeout=max(0.0, wait))
    except PlugbayError as exc:
        return {"error": refusals.issue(plugin_id, exc).to_dict()}
    except concurrent.futures.TimeoutError:
        if not checked.cancel():  # the check began meanwhile: it ends in this turn
            return _answer(checked, plugin_id, refusals)
        if wait < _CHECK_WAIT:  # at the call's deadline: stopped as its timer stops it
            due.overdue()
            return fail("the call reached its deadline before the host checked the event: "
                        "the event was not emitted")  # fmt: skip
        return fail(f"the host did not take the event within {_CHECK_WAIT:g} s")
    return {"ok": None}


def _answer(
    checked: concurrent.futures.Future[None], plugin_id: str, refusals: Refusals
) -> dict[str, Any]:
    """The answer of a check that began as the module stopped waiting for it."""
    try:
        checked.result()
    except PlugbayError as exc:
        return {"error": refusals.issue(plugin_id, exc).to_dict()}
    return {"ok": None}


def _admit(
    checked: concurrent.futures.Future[None],
    events: Callable[[], PluginEmits],
    plugin_id: str,
    name: str,
    data: Any,
    oversized: int | None,
) -> None:
    """On the host's loop: nothing when the module stopped waiting (the event was
    withdrawn); else refused as any plugin's emit is, or published, its listeners served
    after the module has its answer."""
    if not checked.set_running_or_notify_cancel():
        return
    try:
        plugins = events()
        kind = plugins.admit(plugin_id, name, data, oversized)
        task = asyncio.get_running_loop().create_task(plugins.publish(kind, data, source=plugin_id))
    except BaseException as exc:  # answered whatever it is: the module waits for it
        checked.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
        return
    _publishing.add(task)
    task.add_done_callback(_publishing.discard)
    checked.set_result(None)
