"""A host's stop runs every step whatever one raises (``runtime.stop_steps``).

A backend's ``close()`` raising used to end the stop there: the monitor and the event
bus went on running, the state stayed open and its directory locked, so a new host was
refused it until the process ended. Now each step runs, the failure is logged (what,
what may be left), and the first failure is raised once the host has stopped.

Real parts: a host with an inline plugin and a sandboxed one (a real worker forked by the
process backend's zygote), its real state directory, monitor and event bus. The one
stand-in: the process backend's ``close`` is wrapped (monkeypatch) to raise after it did
its work, as no real backend fails on demand.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from plugbay.isolation.process import ProcessBackend, ProcessHandle
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow


async def test_a_backend_close_that_raises_still_unlocks_the_state_and_ends_every_task(
    plugins: PluginFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins("acme.inline")
    plugins("acme.boxed")
    state = tmp_path / "state"
    host = Host(plugins.root, state_dir=state, entry_points=False, inline=["acme.inline"])
    await host.start()
    assert await host.call("acme.inline", "ping") == "pong from acme.inline 1.0.0"
    assert await host.call("acme.boxed", "ping") == "pong from acme.boxed 1.0.0"
    assert isinstance(host.manager.record("acme.boxed").handle, ProcessHandle)  # a worker
    assert host.monitor is not None
    real = ProcessBackend.close

    async def failing(self: ProcessBackend) -> None:
        await real(self)
        raise RuntimeError("the zygote's control socket was already closed")

    monkeypatch.setattr(ProcessBackend, "close", failing)
    caplog.set_level(logging.ERROR, logger="plugbay.host")
    before = asyncio.all_tasks()
    with pytest.raises(RuntimeError, match="the zygote's control socket was already closed"):
        await host.stop()
    said = " ".join(r.getMessage() for r in caplog.records if r.name == "plugbay.host")
    assert "stopping the host: closing the 'process' isolation backend failed" in said, said
    assert "RuntimeError: the zygote's control socket was already closed" in said, said
    assert "The stop went on with its other steps" in said, said
    assert host.phase == "stopped" and not host.started
    assert host.monitor._task is None, "the monitor still runs"
    assert host.events._task is None, "the event bus still runs"
    left = [t for t in asyncio.all_tasks() - {asyncio.current_task()} if not t.done()]
    assert not [t for t in left if t in before or "plugbay" in t.get_name()], left
    # the state directory is unlocked: a new host starts on it and serves
    monkeypatch.undo()
    async with Host(
        plugins.root, state_dir=state, entry_points=False, inline=["acme.inline"]
    ) as again:
        assert await again.call("acme.boxed", "ping") == "pong from acme.boxed 1.0.0"


async def test_a_state_that_fails_to_close_still_gives_up_the_lock(
    plugins: PluginFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins("acme.inline")
    state = tmp_path / "state"
    host = Host(plugins.root, state_dir=state, entry_points=False, inline=["*"])
    await host.start()
    assert host.state is not None
    store: Any = host.state
    real = store.close

    def failing() -> None:
        real()
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store, "close", failing)
    with pytest.raises(OSError, match="Input/output error"):
        await host.stop()
    assert host.phase == "stopped"
    async with Host(plugins.root, state_dir=state, entry_points=False, inline=["*"]) as again:
        assert await again.call("acme.inline", "ping") == "pong from acme.inline 1.0.0"
