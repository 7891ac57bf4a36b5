"""A node's agent killed outright (``isolation._ray_agent``), as an OOM killer would.

On a node added to the session's cluster (``tests/ray_support.py``) with Ray's own
cleanup of a dead worker's processes turned off (its process group, its children), as
on a Ray without it: the agent's zygotes (its default one and a plugin environment's)
and the workers they forked end with it all the same (each zygote dies with its
parent, and each worker with its zygote: ``isolation.zygote``), and the host serves its
plugins there again on its next call.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.environments import IndexSettings
from tests._waiting import until
from tests._wheels import libdemo
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_handle, ray_host

ENV_CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def version(self) -> str:
        import libdemo

        return libdemo.VERSION
"""


def running(pid: int) -> bool:
    import psutil

    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


#: Ray's own cleanup when a worker process dies: off on the test's node
RAY_CLEANUP_OFF = {
    "RAY_process_group_cleanup_enabled": "0",
    "RAY_kill_child_processes_on_worker_exit": "0",
    "RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper": "0",
}


@pytest.fixture
def bare_node(ray_cluster: Any) -> Iterator[str]:
    """A node whose raylet leaves a dead worker's processes alone (removed after)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in RAY_CLEANUP_OFF.items():
            patch.setenv(name, value)  # its raylet's settings, read when it starts
        ray_cluster.add("node-bare")
    try:
        yield "node-bare"
    finally:
        ray_cluster.remove("node-bare")


@pytest.mark.slow
async def test_a_killed_agents_zygotes_and_workers_end_and_its_plugins_serve_again(
    ray_cluster: Any, bare_node: str, tmp_path: Path
) -> None:
    """SIGKILL of a node's agent (no ``close``): nothing it started is left running on the node,
    neither its zygotes nor their workers, and the host's next call to each plugin there
    is served by a new worker (of a new agent)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    libdemo(wheels, "2.0")
    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.plain", extra=on_node(bare_node))
    plugins("acme.own-env", ENV_CODE,
            extra=f'python-dependencies = ["libdemo==2.*"]\n{on_node(bare_node)}')  # fmt: skip
    config = {"ray": {"address": ray_cluster.address, "plugins": ["acme.*"]}}
    policy = IsolationPolicy.from_config(config)  # none trusted: both are the agent's workers
    index = IndexSettings(find_links=(str(wheels),), offline=True)
    async with ray_host(plugins.root, tmp_path / "state", init_timeout=60.0, policy=policy,
                        python_index=index) as host:  # fmt: skip
        assert await host.call("acme.plain", "ping") == "pong from acme.plain 1.0.0"
        assert await host.call("acme.own-env", "version") == "2.0"
        plain, own = ray_handle(host, "acme.plain"), ray_handle(host, "acme.own-env")
        agent = plain._agent
        assert own._agent is agent  # one node, one agent
        facts = await agent.ready.remote()
        zygotes = [facts["zygote"], *(await agent.environments.remote()).values()]
        started = [pid for pid in (*zygotes, plain.pid, own.pid) if pid is not None]
        assert len(started) == 4 and all(map(running, started)), started

        os.kill(facts["pid"], signal.SIGKILL)  # the agent's process, as an OOM killer would

        await until(lambda: not any(map(running, started)), "the agent's processes to end", 30)
        serves = "acme.plain to serve again (through a new agent)"
        said = await until(lambda: _answer(host, "acme.plain", "ping"), serves, 90)
        assert said == "pong from acme.plain 1.0.0"
        serves = "acme.own-env to serve again (from a new zygote of its environment)"
        assert await until(lambda: _answer(host, "acme.own-env", "version"), serves, 90) == "2.0"
        again = ray_handle(host, "acme.plain")
        assert again._agent is not agent and again.pid not in started


async def _answer(host: Any, plugin: str, command: str) -> Any:
    """The plugin's answer, or None while it is not serving (restarting, or failed)."""
    try:
        return await host.call(plugin, command)
    except Exception:
        return None


def cgroup_dirs(groups: Any, name: str) -> list[str]:
    """The directories of the worker cgroup ``name`` there are, in every hierarchy."""
    return [path for path in groups.dirs(name).values() if os.path.isdir(path)]


@pytest.mark.slow
async def test_a_killed_agents_empty_cgroups_are_removed_by_the_next_agent_and_no_others(
    ray_cluster: Any, tmp_path: Path
) -> None:
    """SIGKILL of a node's agent: its workers end with it, their cgroups stayed on the node
    (named by the host's pid, which runs on: no host swept them). A worker's cgroup is
    named by its agent's pid, and the node's next agent removes the empty ones of agents
    no longer running; a running owner's stays."""
    import psutil

    from plugbay.isolation import _cgroups

    try:
        groups = _cgroups.discover()
    except _cgroups.CgroupUnavailable as exc:
        pytest.skip(f"no cgroups this test can write here: {exc}")
    live = f"acme.live-h{os.getpid()}-89abcdef"
    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.plain", extra=on_node("node-a"))
    policy = IsolationPolicy.from_config(
        {"ray": {"address": ray_cluster.address, "plugins": ["acme.*"]}}
    )
    try:
        async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
            assert await host.call("acme.plain", "ping") == "pong from acme.plain 1.0.0"
            worker = psutil.Process(ray_handle(host, "acme.plain").pid)
            agent = worker.parent().parent()  # the worker's zygote's parent
            left = [n for n in _cgroups.orphaned(groups, alive=lambda pid: False)
                    if _cgroups.owner_of(n) == agent.pid]  # fmt: skip
            assert len(left) == 1 and left[0].startswith("acme.plain-h"), left
            groups.create(live, memory=None, cpu_cores=None, pids=None)

            agent.kill()  # SIGKILL, as an OOM killer would
            await until(lambda: not running(worker.pid), "the agent's worker to end", 30)
            serves = "acme.plain to serve again (through a new agent)"
            said = await until(lambda: _answer(host, "acme.plain", "ping"), serves, 90)
            assert said == "pong from acme.plain 1.0.0"
            assert cgroup_dirs(groups, left[0]) == [], "the killed agent's cgroup stayed"
            assert len(cgroup_dirs(groups, live)) == len(groups.parents), "a live owner's went"
    finally:
        with contextlib.suppress(OSError):
            groups.remove(live)


def test_an_ended_agents_cgroup_still_holding_a_process_is_left_as_it_is() -> None:
    """The sweep only removes (``rmdir``), never kills: a cgroup of an owner no longer
    running that still holds a process stays, and so does the process."""
    import psutil

    from plugbay.isolation import _cgroups
    from plugbay.isolation._ray_cgroups import sweep_ended_agents

    try:
        groups = _cgroups.discover()
    except _cgroups.CgroupUnavailable as exc:
        pytest.skip(f"no cgroups this test can write here: {exc}")
    dead = 2**22 + 12345  # above any pid_max this machine uses by default
    busy, empty = f"acme.busy-h{dead}-4567abcd", f"acme.empty-h{dead}-89abcdef"
    for name in (busy, empty):
        groups.create(name, memory=None, cpu_cores=None, pids=None)
    sleeper = psutil.Popen(["sleep", "600"])
    try:
        groups.join(busy, sleeper.pid)
        removed = sweep_ended_agents()
        assert empty in removed and busy not in removed, removed
        assert all(map(os.path.isdir, groups.dirs(busy).values())), "a cgroup in use went"
        assert running(sleeper.pid), "a process in an ended agent's cgroup was killed"
    finally:
        sleeper.kill()
        sleeper.wait()
        for name in (busy, empty):
            with contextlib.suppress(OSError):
                groups.remove(name)
