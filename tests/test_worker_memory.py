"""An idle sandboxed worker at rest: what it holds, beyond the pages it shares with the zygote.

A worker's memory is the zygote's pages it copied (docs/architecture.md, "Performance:
memory"). These tests check what a worker at rest must not hold on top of them: a
second malloc arena (glibc gives each new thread its own, reserving 64 MiB of address
space that the plugin's memory limit counts), or a thread beyond its event loop and
the forwarder of its output.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

from tests._waiting import until
from tests.conftest import PluginFactory

CHATTY = """
from plugbay import UtilityPlugin, command


class P(UtilityPlugin):
    @command
    def say(self, text: str) -> str:
        print(text * 2000, flush=True)  # read by the worker's output thread
        return text
"""

_ARENA = 64 * 2**20  # glibc's HEAP_MAX_SIZE on 64-bit: each thread arena's reservation


def _malloc_arenas(pid: int) -> int:
    """Thread arenas in ``pid``: a 64 MiB-aligned anonymous reservation, its used part
    read-write and the rest PROT_NONE, 64 MiB in all."""
    rows = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 5:  # anonymous
                start, end = (int(x, 16) for x in parts[0].split("-"))
                rows.append((start, end, parts[1]))
    return sum(
        1
        for (start, end, perms), (start2, end2, perms2) in itertools.pairwise(rows)
        if start % _ARENA == 0 and perms == "rw-p" and perms2 == "---p"
        and end == start2 and end2 - start == _ARENA
    )  # fmt: skip


async def test_an_idle_sandboxed_worker_holds_two_threads_and_no_thread_arena(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins("acme.chatty", CHATTY)
    host = make_host(inline=[])
    await host.start()
    try:
        assert await host.call("acme.chatty", "say", text="ab") == "ab"
        pid = host.plugin("acme.chatty").handle.pid
        assert host.info("acme.chatty")["sandbox"]["sandboxed"] is True
        # its output reached the host's log: the output thread ran and read it
        await until(lambda: _logged(host, "acme.chatty", "abab"), "the plugin's output logged")
        # its event loop and the output forwarder, both blocked; no executor thread
        assert len(os.listdir(f"/proc/{pid}/task")) == 2
        # the output thread allocated its read buffer from the one main arena
        assert _malloc_arenas(pid) == 0
    finally:
        await host.stop()


def _logged(host: Any, plugin_id: str, text: str) -> bool:
    return any(text in record.get("message", "") for record in host.logs(plugin_id))
