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
async def test_a_plugins_own_exit_83_is_not_told_as_memory_alone(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.exits", DYING, extra=LIMITED)
    async with _host(tmp_path, plugins) as host:
        error = await _died(host, "acme.exits", "exit", code=83)
        reason = str(host.plugin("acme.exits").reason)
    assert isinstance(error, ResourceLimitExceeded)
    assert "or the plugin's own code ended its worker with os._exit(83)" in error.message
    assert "if the plugin's code calls os._exit(83) itself" in str(error.hint)
    assert "os._exit(83)" in reason


@pytest.mark.asyncio
async def test_the_record_of_a_memory_death_says_what_to_do(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.exits", DYING, extra=LIMITED)
    async with _host(tmp_path, plugins) as host:
        error = await _died(host, "acme.exits", "exit", code=83)
        info = host.info("acme.exits")
    assert "raise the memory limit where it is set" in str(error.hint)
    # what `plugbay info` and health show: the caller's hint, then the restart
    assert "raise the memory limit where it is set" in info["reason"]
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
