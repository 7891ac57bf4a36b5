"""A Wasm module's event checked on the host's loop (``isolation._wasm_events``): an error
of the check itself is not said to be the host stopping, which only a closed loop is."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from plugbay.isolation._wasm_deadline import Deadline
from plugbay.isolation._wasm_events import event_request
from plugbay.isolation.refusals import Refusals


class _Broken:
    def admit(self, plugin_id: str, name: object, payload: object, oversized: object = None) -> str:
        raise RuntimeError("admit broke")

    async def publish(self, name: str, payload: dict[str, Any], *, source: str = "host") -> int:
        return 0


def _request(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    due = Deadline(time.monotonic() + 60, lambda: None)
    return event_request("acme.mod", {"name": "ping", "data": {}}, _Broken, loop, Refusals(), due)


def test_an_error_of_the_check_itself_is_not_the_host_stopping() -> None:
    loop = asyncio.new_event_loop()
    running = threading.Thread(target=loop.run_forever, daemon=True)
    running.start()
    try:
        with pytest.raises(RuntimeError, match="admit broke"):  # a bug: said as itself
            _request(loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        running.join()
    loop.close()
    # a closed loop is a host stopping, and says so
    answer = _request(loop)
    assert answer["error"]["message"] == "the host is stopping: the event was not emitted"
