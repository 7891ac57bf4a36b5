"""A call that cannot start a thread names the limit that stopped it: its thread limit
when it reached ``[resources] threads``, its memory limit (and where it was set) when its
address space had no room left for the new thread's stack. CPython says only "can't
start new thread" for both. The host and a neighbour keep serving.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plugbay import ResourceLimitExceeded
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow]

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

#: starts threads that hold on (and keep their stacks) until one cannot start
SPAWN = """
import threading
from plugbay import UtilityPlugin, command

HELD = threading.Event()

class P(UtilityPlugin):
    @command
    def spawn(self) -> int:
        started = 0
        while started < 10_000:
            threading.Thread(target=HELD.wait, daemon=True).start()
            started += 1
        return started
"""

PROCESS = 'isolation = "process"\n'


async def _spawn_fails(tmp_path: Path, plugins: PluginFactory, resources: str) -> str:
    plugins("acme.neighbour", PING, extra=PROCESS)
    plugins("acme.spawner", SPAWN, extra=PROCESS + "[resources]\n" + resources)
    host = Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=30,
        cleanup_timeout=1.0,
    )
    async with host:
        with pytest.raises(ResourceLimitExceeded) as info:
            await host.call("acme.spawner", "spawn")
        assert await host.call("acme.neighbour", "ping") == "pong"  # the others keep serving
    assert info.value.details["replace"] is True
    return f"{info.value.details['limit']}: {info.value.message}"


@pytest.mark.asyncio
async def test_a_call_that_reaches_its_thread_count_names_the_thread_limit(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    said = await _spawn_fails(tmp_path, plugins, 'threads = 4\nmemory = "2GiB"\n')
    assert said.startswith("threads: the call hit its thread limit"), said


@pytest.mark.asyncio
async def test_a_call_with_no_room_for_a_thread_stack_names_the_memory_limit(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    # 64 threads of 8 MiB stacks are more than 96 MiB: the address space runs out first
    said = await _spawn_fails(tmp_path, plugins, 'threads = 64\nmemory = "96MiB"\n')
    assert said.startswith(
        "memory: the call hit its memory limit, 96 MiB (set by its manifest's [resources] "
        "memory = '96MiB'): no room was left in its address space for a new thread's stack"
    ), said
    assert "thread limit" not in said
