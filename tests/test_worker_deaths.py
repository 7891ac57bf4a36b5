"""A worker's death is told truly, to the caller and in the plugin's record: a status the
host cannot pin on memory says what else it may be, SIGABRT says what it usually means
under a memory limit, the record of a memory death keeps what to do, and an unsandboxed
worker's ``MemoryError`` at import reads as memory. The neighbour keeps answering.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plugbay import PlugbayError, PluginCrashed, ResourceLimitExceeded
from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow]

DYING = """
import ctypes
import os
import stat
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"

    @command
    def exit(self, code: int) -> None:
        os._exit(code)

    @command
    def abort(self) -> None:
        ctypes.CDLL(None).abort()

    @command
    def forge(self) -> None:
        # a hostile plugin forging its worker's memory mark: the mark's own helper,
        # then a byte on every pipe it holds (its channel, a socket, it leaves alone),
        # then the worker's exit code
        from plugbay.isolation import _memory_mark

        _memory_mark.leave()
        for fd in range(3, 1024):
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    os.write(fd, b"m")
            except OSError:
                pass
        os._exit(83)
"""

HOARD_AT_IMPORT = """
from plugbay import UtilityPlugin, command

HOARD = bytearray(1 << 50)  # more than any machine has: MemoryError at once

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

LIMITED = 'isolation = "process"\n[resources]\nmemory = "256MiB"\n'


def _host(tmp_path: Path, plugins: PluginFactory, policy: IsolationPolicy | None = None) -> Host:
    plugins("acme.neighbour", DYING, extra='isolation = "process"\n')
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=30,
        cleanup_timeout=1.0,
        policy=policy,
    )


async def _died(host: Host, plugin_id: str, command: str, **params: int) -> PlugbayError:
    """The caller's error as the plugin's worker dies in ``command``; its record has the
    crash once this returns, and the neighbour still answers."""
    with pytest.raises(PlugbayError) as caught:
        await host.call(plugin_id, command, **params)
    record = host.plugin(plugin_id)
    async with asyncio.timeout(30):  # a guard against a hang, not a timed assertion
        while record.error is None:
            await asyncio.sleep(0.02)
            record = host.plugin(plugin_id)
    assert await host.call("acme.neighbour", "ping") == "pong"
    return caught.value


@pytest.mark.asyncio
async def test_a_plugins_own_exit_83_is_its_crash_not_memory(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """The worker's memory exit code, from the plugin's own code: a crash with that code,
    never its memory limit (a real memory exit keeps its words: test_memory_at_start)."""
    plugins("acme.exits", DYING, extra=LIMITED)
    async with _host(tmp_path, plugins) as host:
        error = await _died(host, "acme.exits", "exit", code=83)
        reason = str(host.plugin("acme.exits").reason)
    assert isinstance(error, PluginCrashed)
    assert not isinstance(error, ResourceLimitExceeded)
    # past Load the host cannot tell the plugin's own exit from memory used up after it
    # loaded: both are said, the limit named, never "it did not run out of memory"
    assert "exited with code 83 after its plugin loaded: either the plugin's own code" in (
        error.message
    )
    assert "or the worker used up its memory limit, 256 MiB (set by its manifest" in error.message
    assert "did not run out of memory" not in error.message
    assert "look in the plugin's code for what exits with code 83" in str(error.hint)
    assert "either the plugin's own code ended it" in reason


@pytest.mark.asyncio
async def test_a_plugin_cannot_forge_the_memory_mark(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.exits", DYING, extra=LIMITED)
    async with _host(tmp_path, plugins) as host:
        error = await _died(host, "acme.exits", "forge")
        info = host.info("acme.exits")
    assert isinstance(error, PluginCrashed)
    assert not isinstance(error, ResourceLimitExceeded)
    assert "after its plugin loaded: either the plugin's own code ended it" in error.message
    assert "did not run out of memory" not in error.message
    # what `plugbay info` and health show: the crash, then the restart
    assert "either the plugin's own code ended it" in info["reason"]
    assert "; restart 1 of " in info["reason"]


@pytest.mark.asyncio
async def test_sigabrt_under_a_memory_limit_says_what_it_usually_means(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.aborts", DYING, extra=LIMITED)
    async with _host(tmp_path, plugins) as host:
        error = await _died(host, "acme.aborts", "abort")
        reason = str(host.plugin("acme.aborts").reason)
    assert isinstance(error, PluginCrashed)
    assert error.message.startswith("its worker was killed by SIGABRT: native code in it")
    assert "an allocation that failed under its memory limit, 256 MiB" in error.message
    assert "(set by its manifest's [resources] memory = '256MiB')" in error.message
    assert str(error.hint).startswith("raise the memory limit where it is set")
    assert "raise the memory limit where it is set" in reason


@pytest.mark.asyncio
async def test_sigabrt_without_a_memory_limit_names_no_limit(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.aborts", DYING, extra='isolation = "process"\n')
    policy = IsolationPolicy.from_config({"policy": {"inline": ["acme.aborts"]}}, where="t.toml")
    async with _host(tmp_path, plugins, policy) as host:  # trusted, its own worker: no limit
        error = await _died(host, "acme.aborts", "abort")
    assert "called abort(), on a failed assertion or allocation" in error.message
    assert "memory limit" not in error.message


@pytest.mark.asyncio
async def test_an_unsandboxed_workers_memory_error_at_import_reads_as_memory(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.hoard", HOARD_AT_IMPORT, extra='isolation = "process"\n')
    policy = IsolationPolicy.from_config({"policy": {"inline": ["acme.hoard"]}}, where="t.toml")
    async with _host(tmp_path, plugins, policy) as host:
        record = host.plugin("acme.hoard")
        assert await host.call("acme.neighbour", "ping") == "pong"
    assert str(record.state) == "failed"
    assert "importing 'main' ran out of memory (MemoryError)" in str(record.reason)
    assert "its worker is not sandboxed" in str(record.reason)
    assert "have the plugin allocate less at import" in str(record.reason)


def test_exit_83_without_the_mark_before_load_is_never_the_plugins(
    plugins: PluginFactory,
) -> None:
    """Before Load no plugin code ran: a worker's exit 83 without its mark is its start's
    memory (the mark lost), never the plugin's own exit, and names the limit."""
    from plugbay.isolation._exit_words import crashed
    from plugbay.model.manifest import load_manifest

    manifest = load_manifest(plugins("acme.exits", DYING, extra=LIMITED) / "plugin.toml")
    error = crashed(manifest, None, 4321, 83, marked=False, past_load=False)
    assert "exited with code 83 before its plugin's code ran, so not by the plugin" in (
        error.message
    )
    assert "its memory limit, 256 MiB (set by its manifest's [resources] memory" in error.message
    assert "the plugin's own code ended it" not in error.message
    assert str(error.hint).startswith("raise the memory limit where it is set")
