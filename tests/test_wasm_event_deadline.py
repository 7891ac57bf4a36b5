"""A Wasm module's event waits for the host's loop to check it (``isolation._wasm_events``);
the call's time-out is a timer on that same loop. When a plugin blocks the loop (an
``async def`` command calling ``time.sleep``), neither comes: the module's wait ends at
its call's deadline all the same, the event is withdrawn (nobody hears it, nothing is
counted), the caller gets the time-out and the instance is replaced, and the plugin
serves on. And a module never waits on listeners, not even for room under a ``block``
overflow policy: its events wait for room in the host. A C module built with the
toolchain, Python plugins, one host."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from plugbay import PluginTimeout
from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host
from tests import _wasm
from tests._waiting import until
from tests.conftest import PluginFactory

pytestmark = _wasm.needs_toolchain

WASM = "acme.late-emitter"

SOURCE = r"""
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugbay.h"

int pb_command(const char *name, pb_json params, pb_buf *out) {
    if (strcmp(name, "ping") == 0) { pb_puts(out, "\"pong\""); return 0; }
    if (strcmp(name, "emit_after") == 0) {
        /* sleeps (the host's sleep, off its loop), then emits notes.saved */
        long long ms = 0;
        pb_get_int(params, "ms", &ms);
        if (ms > 0) usleep((useconds_t)(ms * 1000));
        char *reply = pb_host("event", "{\"name\": \"notes.saved\", \"data\": {\"key\": \"a\"}}");
        if (!reply) return pb_fail(out, "no reply");
        pb_json r = {reply, strlen(reply)};
        pb_json error = pb_get(r, "error");
        int status = 0;
        if (error.data) status = pb_fail_json(out, error);
        else pb_puts(out, "\"emitted\"");
        free(reply);
        return status;
    }
    return pb_fail(out, "no such command");
}
"""

MANIFEST = """
[commands.ping]
returns = "str"

[commands.emit_after]
params = { ms = "int" }
returns = "str"

[events]
emits = ["notes.saved"]

[resources]
timeout = 1
"""

LISTENER = """
import asyncio
import time

from plugbay import UtilityPlugin, command, on_event

class P(UtilityPlugin):
    heard: list = []
    gate: asyncio.Event | None = None

    def _gate(self) -> asyncio.Event:
        if P.gate is None:
            P.gate = asyncio.Event()
        return P.gate

    @on_event("notes.saved")
    async def saved(self, event: dict) -> None:
        await self._gate().wait()  # a slow listener, until the test lets it go
        self.heard.append(event)

    @command
    async def open_gate(self) -> None:
        self._gate().set()

    @command
    def what_was_heard(self) -> list:
        return self.heard

    @command
    async def stall(self, seconds: float) -> None:
        time.sleep(seconds)  # a plugin's blocking code on the host's loop
"""


def new_host(tmp_path: Path, listens: str = "") -> Host:
    plugins = PluginFactory(tmp_path / "plugins")
    _wasm.write_plugin(plugins.root / "late-emitter", WASM, SOURCE, MANIFEST)
    plugins("acme.listener", LISTENER, extra=f'[events.listens."notes.saved"]\n{listens}')
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=60,
        policy=IsolationPolicy(inline=["acme.listener"]),
    )


async def test_an_event_waiting_on_a_blocked_loop_ends_at_its_calls_deadline(
    tmp_path: Path,
) -> None:
    async with new_host(tmp_path) as host:
        handle: Any = host.plugin(WASM).handle
        emitted = host.manager.plugin_events.emitted
        late = asyncio.ensure_future(host.call(WASM, "emit_after", ms=600))
        await until(lambda: handle.running(), "the Wasm call runs")
        # the loop is blocked past the call's 1 s deadline: the module emits meanwhile
        await host.call("acme.listener", "stall", seconds=3)
        await host.call("acme.listener", "open_gate")
        with pytest.raises(PluginTimeout) as timed_out:
            await late
        assert "emit_after" in timed_out.value.message
        assert handle.replaced == 1  # as any timed-out call's instance is
        assert emitted[(WASM, "notes.saved")] == 0  # withdrawn: nobody hears it
        assert await host.call("acme.listener", "what_was_heard") == []

        assert await host.call(WASM, "ping") == "pong"  # it serves on
        assert await host.call(WASM, "emit_after", ms=0) == "emitted"
        await until(
            lambda: host.call("acme.listener", "what_was_heard"), "the listener hears it", 30
        )
        assert await host.call("acme.listener", "what_was_heard") == [{"key": "a"}]
        assert emitted[(WASM, "notes.saved")] == 1


async def test_a_modules_emit_does_not_wait_for_room_under_a_block_policy(
    tmp_path: Path,
) -> None:
    # one event in the listener's queue at most; a sender may wait 30 s for room: a
    # module that waited would run past its 1 s deadline
    block = 'queue = 1\noverflow = "block"\nblock-timeout = 30\n'
    async with new_host(tmp_path, block) as host:
        for _ in range(3):  # one handled (held), one queued, one waiting for room
            assert await host.call(WASM, "emit_after", ms=0) == "emitted"
        assert await host.call("acme.listener", "what_was_heard") == []  # still held
        await host.call("acme.listener", "open_gate")
        heard = await until(lambda: _all_heard(host, 3), "the listener hears the three events", 30)
        assert heard == [{"key": "a"}] * 3  # the one that waited for room was not dropped


async def _all_heard(host: Host, count: int) -> list[Any]:
    heard: list[Any] = await host.call("acme.listener", "what_was_heard")
    return heard if len(heard) >= count else []
