"""``plugbay run``'s zygote spawned before its event loop (``isolation.zygote_early``):
the host takes it as its own zygote, forks its workers from it, and leaves no process
behind, taken or not."""

from __future__ import annotations

import os
from pathlib import Path

from plugbay.runtime.host import Host
from plugbay.runtime.startup import boot_zygote, discard_zygote, spawn_zygote, warm_up
from tests.conftest import PluginFactory


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _gone(pid: int) -> bool:
    """Exited and reaped: no process with this pid is ours, not even a zombie."""
    try:
        return _parent_of(pid) != os.getpid()
    except FileNotFoundError:
        return True


async def test_the_host_forks_its_sandboxed_workers_from_the_zygote_spawned_first(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.echo")
    early = spawn_zygote()  # before the host exists, as plugbay run does
    assert early is not None
    zygote = await boot_zygote(early)
    host = Host(plugins_dir=plugins.root, state_dir=tmp_path / "state")
    try:
        await host.open()
        assert await warm_up(host.manager.backends, zygote)  # the host took it
        await host.start()
        assert await host.call("acme.echo", "ping") == "pong from acme.echo 1.0.0"
        handle = host.plugin("acme.echo").handle
        assert handle is not None and handle.isolated
        assert _parent_of(handle.pid) == early.pid  # type: ignore[attr-defined]
    finally:
        await host.stop()
    assert early.returncode is not None  # the host stopped it, and it was reaped
    assert _gone(early.pid)


async def test_a_zygote_no_host_took_is_stopped_and_reaped(tmp_path: Path) -> None:
    early = spawn_zygote()
    assert early is not None
    zygote = await boot_zygote(early)
    await discard_zygote(zygote)  # what plugbay run does when its host could not open
    assert early.returncode == 0  # it saw its control socket close and exited
    assert _gone(early.pid)
