"""A Wasm module's service call waits for the host's loop to call the other plugin
(``isolation._wasm_services``); the call's time-out is a timer on that same loop. The
module's wait ends at its call's deadline all the same: the caller gets the time-out,
the instance is replaced, the service call is cancelled (a sandboxed callee is sent a
``Cancel``; one the blocked loop had not begun is never made), and the plugins serve on.
A C module built with the toolchain, a sandboxed Python callee, one host."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from plugbay import PluginTimeout
from plugbay.isolation.policy import IsolationPolicy
from plugbay.isolation.process import ProcessHandle
from plugbay.runtime.host import Host
from tests import _wasm
from tests._waiting import until
from tests.conftest import PluginFactory

pytestmark = _wasm.needs_toolchain

WASM = "acme.asker"
CALLEE = "acme.slow"

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugbay.h"

int pb_command(const char *name, pb_json params, pb_buf *out) {
    if (strcmp(name, "ping") == 0) { pb_puts(out, "\"pong\""); return 0; }
    if (strcmp(name, "ask_after") == 0) {
        /* sleeps (the host's sleep, off its loop), then calls acme.slow's nap */
        long long ms = 0, seconds = 0;
        pb_get_int(params, "ms", &ms);
        pb_get_int(params, "seconds", &seconds);
        if (ms > 0) usleep((useconds_t)(ms * 1000));
        char request[160];
        snprintf(request, sizeof request, "{\"plugin\": \"acme.slow\", \"command\": \"nap\", "
                 "\"params\": {\"seconds\": %lld}}", seconds);
        char *reply = pb_host("service", request);
        if (!reply) return pb_fail(out, "no reply");
        pb_json r = {reply, strlen(reply)};
        pb_json error = pb_get(r, "error");
        int status = 0;
        if (error.data) status = pb_fail_json(out, error);
        else pb_puts(out, "\"answered\"");
        free(reply);
        return status;
    }
    return pb_fail(out, "no such command");
}
"""

MANIFEST = """
[commands.ping]
returns = "str"

[commands.ask_after]
params = { ms = "int", seconds = "int" }
returns = "str"

[dependencies]
"acme.slow" = "^1"

[resources]
timeout = 1
"""

SLOW = """
import asyncio

from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    began = 0
    cancelled = 0

    @command
    async def nap(self, seconds: int) -> str:
        P.began += 1
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            P.cancelled += 1
            raise
        return "rested"

    @command
    def naps(self) -> dict:
        return {"began": P.began, "cancelled": P.cancelled}
"""

STALLER = """
import time

from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def stall(self, seconds: float) -> None:
        time.sleep(seconds)  # a plugin's blocking code on the host's loop
"""


def new_host(tmp_path: Path) -> Host:
    plugins = PluginFactory(tmp_path / "plugins")
    _wasm.write_plugin(plugins.root / "asker", WASM, SOURCE, MANIFEST)
    plugins(CALLEE, SLOW)
    plugins("acme.staller", STALLER)
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=60,
        policy=IsolationPolicy(inline=["acme.staller"]),
    )


async def test_a_service_call_past_its_calls_deadline_is_cancelled_in_the_callee(
    tmp_path: Path,
) -> None:
    async with new_host(tmp_path) as host:
        assert isinstance(host.plugin(CALLEE).handle, ProcessHandle)  # sandboxed: a worker
        handle: Any = host.plugin(WASM).handle
        with pytest.raises(PluginTimeout) as timed_out:
            await host.call(WASM, "ask_after", ms=0, seconds=5)
        assert "ask_after" in timed_out.value.message
        assert handle.replaced == 1
        naps = await until(
            lambda: _naps(host, cancelled=1), "the callee's nap is cancelled (a Cancel)", 30
        )
        # ended at its 1 s deadline, not the callee's 5 s: the callee's nap was cut short
        assert naps == {"began": 1, "cancelled": 1}
        assert await host.call(WASM, "ping") == "pong"  # it serves on
        assert await host.call(CALLEE, "nap", seconds=0) == "rested"  # and so does its callee


async def test_a_service_call_waiting_on_a_blocked_loop_ends_at_its_calls_deadline(
    tmp_path: Path,
) -> None:
    async with new_host(tmp_path) as host:
        handle: Any = host.plugin(WASM).handle
        late = asyncio.ensure_future(host.call(WASM, "ask_after", ms=600, seconds=5))
        await until(lambda: handle.running(), "the Wasm call runs")
        # the loop is blocked past the call's 1 s deadline: the module asks meanwhile
        await host.call("acme.staller", "stall", seconds=3)
        with pytest.raises(PluginTimeout) as timed_out:
            await late
        assert "ask_after" in timed_out.value.message
        await until(lambda: handle.replaced == 1, "the instance is replaced", 30)
        assert await host.call(WASM, "ping") == "pong"  # it serves on
        # withdrawn at the deadline, before the loop came to it: the callee never began
        assert await host.call(CALLEE, "naps") == {"began": 0, "cancelled": 0}
        assert await host.call(CALLEE, "nap", seconds=0) == "rested"


async def _naps(host: Host, *, cancelled: int) -> dict[str, int] | None:
    naps: dict[str, int] = await host.call(CALLEE, "naps")
    return naps if naps["cancelled"] >= cancelled else None
