"""A memory limit too low for a sandboxed worker to start says so: which limit, where it
was set (the manifest's ``[resources] memory`` or the host's policy) and what to raise,
never "its worker process exited with code 0". The host and a neighbour keep serving.

Each case is forced, not left to luck: the worker's own start is made to need more than
any such limit (the zygote is started with a thread stack larger than the limit, so the
worker's first thread can never map its stack), and a plugin's import allocates more
than its limit.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugbay import ResourceLimitExceeded
from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host
from plugbay.runtime.records import PluginRecord
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow]

MiB = 1 << 20
#: the zygote's thread stack: more than any limit below leaves a worker
STACK = 512 * MiB

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

HOARD_AT_IMPORT = """
from plugbay import UtilityPlugin, command

HOARD = bytearray(1 << 30)  # more than its limit, at import

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

PROCESS = 'isolation = "process"\n'


@pytest.fixture
def big_thread_stacks() -> Iterator[None]:
    """The zygote (a new process) starts with ``STACK`` as its threads' stack size."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if hard != resource.RLIM_INFINITY and hard < STACK:
        pytest.skip("the stack limit's hard cap is below the size the test needs")
    resource.setrlimit(resource.RLIMIT_STACK, (STACK, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))


def _host(tmp_path: Path, plugins: PluginFactory, policy: IsolationPolicy | None = None) -> Host:
    plugins("acme.neighbour", PING, extra=PROCESS + '[resources]\nmemory = "2GiB"\n')
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=30,
        cleanup_timeout=1.0,
        policy=policy,
    )


async def _failed(host: Host, plugin_id: str) -> tuple[str, str]:
    """Why the plugin's worker ended (as it loaded, or as its runtime started threads
    after): a memory limit, while its neighbour answers."""
    record = host.plugin(plugin_id)
    async with asyncio.timeout(60):  # a guard against a hang, not a timed assertion
        while True:
            if record.error is not None:
                break
            await asyncio.sleep(0.02)
    assert str(record.state) != "active", record.reason
    assert isinstance(record.error, ResourceLimitExceeded), record.reason
    assert record.error.details["limit"] == "memory"
    assert await host.call("acme.neighbour", "ping") == "pong"  # the others keep serving
    return str(record.reason), str(record.error.hint)


async def _ended(host: Host, plugin_id: str) -> PluginRecord:
    """The plugin's record once its worker ended (its neighbour, under the same cap,
    may end too)."""
    record = host.plugin(plugin_id)
    async with asyncio.timeout(60):  # a guard against a hang, not a timed assertion
        while True:
            if record.error is not None:
                return record
            await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_a_limit_the_worker_cannot_start_under_names_the_manifest(
    tmp_path: Path, plugins: PluginFactory, big_thread_stacks: None
) -> None:
    plugins("acme.tiny", PING, extra=PROCESS + '[resources]\nmemory = "8MiB"\n')
    async with _host(tmp_path, plugins) as host:
        reason, hint = await _failed(host, "acme.tiny")
    assert "exited with code" not in reason
    assert "ran out of memory" in reason
    assert "its memory limit, 8 MiB (set by its manifest's [resources] memory = '8MiB')" in reason
    assert "raise the memory limit where it is set" in hint
    assert "thread stack (512 MiB)" in hint  # the least that starts


@pytest.mark.asyncio
async def test_a_limit_from_the_hosts_policy_names_the_policy(
    tmp_path: Path, plugins: PluginFactory, big_thread_stacks: None
) -> None:
    plugins("acme.tiny", PING, extra=PROCESS)
    policy = IsolationPolicy.from_config(
        {"policy": {"defaults": {"memory": "8MiB"}}}, where="plugbay.toml"
    )
    async with _host(tmp_path, plugins, policy) as host:
        reason, hint = await _failed(host, "acme.tiny")
    assert "exited with code" not in reason
    assert "raise the memory limit where it is set" in hint
    assert "its memory limit, 8 MiB (set by the host's policy ([policy.defaults] memory" in reason


@pytest.mark.asyncio
async def test_a_cap_equal_to_the_ask_names_the_manifest(
    tmp_path: Path, plugins: PluginFactory, big_thread_stacks: None
) -> None:
    """The manifest asks for what the cap allows, spelt otherwise: the cap lowered
    nothing, so the manifest set the limit."""
    plugins("acme.tiny", PING, extra=PROCESS + '[resources]\nmemory = "8192KiB"\n')
    policy = IsolationPolicy.from_config(
        {"policy": {"limits": {"memory": "8MiB"}}}, where="plugbay.toml"
    )
    async with _host(tmp_path, plugins, policy) as host:  # the cap holds the neighbour too
        record = await _ended(host, "acme.tiny")
    assert "8 MiB (set by its manifest's [resources] memory = '8192KiB')" in str(record.reason)


@pytest.mark.asyncio
async def test_a_cap_under_the_policys_default_names_the_cap(
    tmp_path: Path, plugins: PluginFactory, big_thread_stacks: None
) -> None:
    """The manifest asks nothing and the policy's default is above its cap: the cap set
    the limit, not the default (the words once named the default)."""
    plugins("acme.tiny", PING, extra=PROCESS)
    policy = IsolationPolicy.from_config(
        {"policy": {"defaults": {"memory": "512MiB"}, "limits": {"memory": "8MiB"}}},
        where="plugbay.toml",
    )
    async with _host(tmp_path, plugins, policy) as host:  # the cap holds the neighbour too
        record = await _ended(host, "acme.tiny")
        reason = str(record.reason)
    assert isinstance(record.error, ResourceLimitExceeded), reason
    assert (
        "its memory limit, 8 MiB (set by the host's policy ([policy.limits] memory caps "
        "the 512 MiB its [policy.defaults] memory sets, as its manifest sets no "
        "[resources] memory))" in reason
    )


@pytest.mark.asyncio
async def test_a_memory_error_at_import_names_the_limit(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins("acme.hoard", HOARD_AT_IMPORT, extra=PROCESS + '[resources]\nmemory = "64MiB"\n')
    async with _host(tmp_path, plugins) as host:
        reason, hint = await _failed(host, "acme.hoard")
    assert "loading it ran out of memory: its memory limit, 64 MiB" in reason
    assert "set by its manifest's [resources] memory = '64MiB'" in reason
    assert "raise the memory limit where it is set" in hint


SHMEM_HOG = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def hog(self) -> int:
        # pages of a memory file: charged to the cgroup, outside the address space limit
        fd = os.memfd_create("hog")
        chunk = b"x" * (1 << 20)
        for n in range(1024):
            os.write(fd, chunk)
        return n
"""


@pytest.mark.asyncio
async def test_the_oom_killer_names_where_the_limit_was_set(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    extra = PROCESS + '[resources]\nmemory = "64MiB"\nfile-size = "2GiB"\n'
    plugins("acme.hog", SHMEM_HOG, extra=extra)
    async with _host(tmp_path, plugins) as host:
        with pytest.raises(ResourceLimitExceeded) as info:
            await host.call("acme.hog", "hog")
        assert await host.call("acme.neighbour", "ping") == "pong"
    assert "OOM killer" in info.value.message
    assert "64 MiB, set by its manifest's [resources] memory = '64MiB'" in info.value.message
