"""A hung worker's stacks are read by the host from the worker's own descriptor table
(``/proc/<pid>/fd``), which the plugin controls: a plugin that spoils its stack file
neither holds the host nor escapes being killed as hung."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from plugbay import PluginCrashed
from plugbay.isolation.diagnostics import _MAX_STACKS, read_stacks
from plugbay.isolation.process import ProcessHandle
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow

#: blocks its loop (the host calls it hung) after spoiling its stack file; when it wakes
#: (20 s: a hang guard, not a timing), it leaves a mark in its data directory
SPOILER = """
import os, signal, time
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"

    @command
    def data_dir(self) -> str:
        return str(self.context.environment.data_dir)

    @command
    def grow(self) -> None:  # 60 MiB of nothing in its stack file, its loop free
        stacks = next(int(fd) for fd in os.listdir("/proc/self/fd")
                      if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:plugbay-stacks"))
        os.ftruncate(stacks, 60 << 20)

    @command
    def forge(self) -> None:  # a memfd of the stack file's name, on the lowest descriptor
        forged = os.memfd_create("plugbay-stacks")
        os.write(forged, b"forged stacks")
        os.dup2(forged, 0)  # in stdin's place, which its worker never reads

    @command
    async def hang(self, spoil: str) -> str:
        stacks = next(int(fd) for fd in os.listdir("/proc/self/fd")
                      if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:plugbay-stacks"))
        read_end, write_end = os.pipe()
        if spoil == "pipe":  # the host finds the memfd, signals, then opens a pipe
            signal.signal(signal.SIGUSR1, lambda *_: os.dup2(read_end, stacks))
        else:  # faulthandler's handler gone: nothing is ever written
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        if spoil == "huge":  # 60 MiB of nothing for the host to read, were it to read it all
            os.ftruncate(stacks, 60 << 20)
        time.sleep(20)
        (self.context.environment.data_dir / "woke").write_text("not killed")
        os.close(write_end)
        return "woke"
"""

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


@pytest.mark.parametrize("spoil", ["pipe", "ignored", "huge"])
async def test_a_plugin_that_spoils_its_stack_file_is_killed_as_hung_and_holds_nobody(
    plugins: PluginFactory, tmp_path: Path, spoil: str
) -> None:
    plugins("acme.spoiler", SPOILER, extra='isolation = "process"\n[resources]\ntimeout = 60\n')
    plugins("acme.neighbour", NEIGHBOUR, extra='isolation = "process"\n')
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False)
    async with host:
        data_dir = Path(await host.call("acme.spoiler", "data_dir"))
        with pytest.raises(PluginCrashed, match="stopped answering its heartbeat"):
            await host.call("acme.spoiler", "hang", spoil=spoil)
        # killed while it slept: the host's loop was not held by its pipe until it woke
        assert not (data_dir / "woke").exists()
        assert await host.call("acme.neighbour", "ping") == "pong"
        killed = [
            r["message"]
            for r in host.logs("acme.spoiler", limit=1000)
            if "stopped answering its heartbeat; its stacks:" in r["message"]
        ]
        assert killed, "its kill is not in its log"
        if spoil != "huge":  # (how much of it is read: test_a_huge_stack_file_is_read_bounded)
            assert "(none: the worker did not write its stacks" in killed[-1]


async def test_a_hung_workers_stack_read_does_not_hold_its_neighbours_calls(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A worker that ignores SIGUSR1 makes the host wait its whole stack poll (0.3 s): that
    wait is off the host's loop, so a neighbour's calls keep answering through the kill."""
    plugins("acme.spoiler", SPOILER, extra='isolation = "process"\n[resources]\ntimeout = 60\n')
    plugins("acme.neighbour", NEIGHBOUR, extra='isolation = "process"\n')
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False)
    async with host:

        async def longest_gap(until: asyncio.Future[object] | None, calls: int) -> float:
            last, longest, made = time.monotonic(), 0.0, 0
            while (until is None and made < calls) or (until is not None and not until.done()):
                assert await host.call("acme.neighbour", "ping") == "pong"
                now = time.monotonic()
                longest, last, made = max(longest, now - last), now, made + 1
            return longest

        normal = await longest_gap(None, 50)
        hang = asyncio.ensure_future(host.call("acme.spoiler", "hang", spoil="ignored"))
        during = await longest_gap(hang, 0)
        with pytest.raises(PluginCrashed, match="stopped answering its heartbeat"):
            await hang
        killed = [
            r["message"]
            for r in host.logs("acme.spoiler", limit=1000)
            if "stopped answering its heartbeat; its stacks:" in r["message"]
        ]
    assert killed and "(none: the worker did not write its stacks" in killed[-1]
    wrote = "its stacks: (as the worker wrote them, and its plugin can write there too)"
    assert wrote in killed[-1]
    # held by the 0.3 s poll, the neighbour's longest gap would be at least that
    assert during < 0.3, f"the neighbour waited {during:.3f} s (normally {normal:.3f} s)"


async def test_a_huge_stack_file_is_read_bounded(plugins: PluginFactory, tmp_path: Path) -> None:
    """A plugin can grow its worker's stack file as it likes: the host reads at most
    ``_MAX_STACKS`` bytes of it, from a real worker's 60 MiB memfd."""
    plugins("acme.spoiler", SPOILER, extra='isolation = "process"\n')
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False)
    async with host:
        await host.call("acme.spoiler", "grow")
        handle = host.plugin("acme.spoiler").handle
        assert isinstance(handle, ProcessHandle)
        text, length = await asyncio.to_thread(read_stacks, handle.pid, tasks=False)
    assert length >= 60 << 20  # the file is that big, and was left so
    assert 0 < len(text.encode()) <= _MAX_STACKS


async def test_a_forged_stack_file_on_a_lower_descriptor_is_passed_by(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A plugin's own memfd named as the stack file, on a descriptor below the worker's:
    the host reads the one the worker opened as it started."""
    plugins("acme.spoiler", SPOILER, extra='isolation = "process"\n')
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False)
    async with host:
        await host.call("acme.spoiler", "forge")
        handle = host.plugin("acme.spoiler").handle
        assert isinstance(handle, ProcessHandle)
        text = await asyncio.to_thread(handle.dump_stacks, tasks=False)
    assert "forged stacks" not in text
    assert "most recent call first" in text
