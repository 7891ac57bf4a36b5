"""A hung worker's stacks are read by the host from the worker's own descriptor table
(``/proc/<pid>/fd``), which the plugin controls: a plugin that spoils its stack file
neither holds the host nor escapes being killed as hung."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from plugbay import PluginCrashed
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
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
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
        if spoil == "huge":  # the host read a bounded part of it, and kept less
            assert len(killed[-1]) < 2 << 20
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
            assert grown < 50 << 10, f"the host's peak memory grew by {grown >> 10} MiB"
        else:
            assert "(none: the worker did not write its stacks" in killed[-1]
