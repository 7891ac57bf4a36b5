"""The copies kept for rollback are taken off the event loop, and still in order: a
reload right after a start, a rollback right after it, a stop at once, a failed start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay import PlugbayError
from plugbay.runtime.host import Host
from plugbay.runtime.store import KEPT, PluginStore
from plugbay.state import StateStore
from tests.conftest import PluginFactory

TOOL = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def label(self) -> str:
        return "{label}"
"""

FAILS = """
from plugbay import UtilityPlugin

class P(UtilityPlugin):
    async def initialize(self, context) -> None:
        raise RuntimeError("no start today")
"""


def edit(directory: Path, label: str, version: str) -> None:
    """What an author does between two reloads: new code, a new version."""
    (directory / "main.py").write_text(TOOL.format(label=label))
    manifest = directory / "plugin.toml"
    lines = [
        f'version = "{version}"' if line.startswith("version") else line
        for line in manifest.read_text().splitlines()
    ]
    manifest.write_text("\n".join(lines) + "\n")


def leftovers(state: Path, plugin_id: str) -> list[str]:
    """Temporary copies (dot names) left in a plugin's part of the store."""
    directory = state / "store" / plugin_id
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture(params=["inline", "process"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_rollback_right_after_a_reload_right_after_the_start_finds_what_served(
    plugins: PluginFactory, make_host: Callable[..., Host], backend: str, tmp_path: Path
) -> None:
    directory = plugins("acme.tool", TOOL.format(label="v1"), extra=f'isolation = "{backend}"\n')
    async with make_host() as host:
        # edited the moment the start returns: the copy of 1.0.0 is of what served
        edit(directory, "v2", "1.1.0")
        await host.reload("acme.tool")
        assert await host.call("acme.tool", "label") == "v2"
        edit(directory, "v3", "1.2.0")
        rec = await host.rollback("acme.tool")  # to the version before: 1.0.0
        assert rec.version == "1.0.0"
        assert await host.call("acme.tool", "label") == "v1"
        assert rec.manifest is not None and rec.manifest.root is not None
        assert rec.manifest.root.is_relative_to(tmp_path / "state" / "store")
        rec = await host.rollback("acme.tool", "1.1.0")  # kept a moment ago
        assert await host.call("acme.tool", "label") == "v2"
        # the plugin's own directory still holds the newest edit, untouched
        assert 'return "v3"' in (directory / "main.py").read_text()


async def test_every_copy_asked_for_is_kept_when_the_host_stops_at_once(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    directory = plugins("acme.tool", TOOL.format(label="v0"), version="1.0.0")
    async with make_host() as host:
        for i in range(1, 4):
            edit(directory, f"v{i}", f"1.0.{i}")
            await host.reload("acme.tool")
    # the host stopped with no pause: every version that served is in the store,
    # with its own files, its row in the state, and no temporary copy left
    state = StateStore(tmp_path / "state" / "state.db")
    try:
        rows = [(v, source) for _, v, source in state.installed("acme.tool")]
        assert [v for v, _ in rows] == ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]
        assert all(source.startswith(KEPT) for _, source in rows)
        store = PluginStore(tmp_path / "state" / "store", state)
        for i, version in enumerate(["1.0.0", "1.0.1", "1.0.2", "1.0.3"]):
            kept = store.manifest("acme.tool", version)
            assert kept.root is not None
            assert f'return "v{i}"' in (kept.root / "main.py").read_text()
    finally:
        state.close()
    assert leftovers(tmp_path / "state", "acme.tool") == []


async def test_a_start_that_fails_leaves_no_copy_behind(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    plugins("acme.broken", FAILS)
    plugins("acme.tool", TOOL.format(label="v1"))
    async with make_host() as host:
        assert host.plugin("acme.broken").state == "failed"
        assert await host.call("acme.tool", "label") == "v1"  # its neighbour serves
        assert host.store is not None
        await host.store.settled()
        assert host.store.kept("acme.tool", "1.0.0")
        assert not host.store.kept("acme.broken", "1.0.0")
    assert not (tmp_path / "state" / "store" / "acme.broken").exists()
    assert leftovers(tmp_path / "state", "acme.tool") == []


UNHEALTHY = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def label(self) -> str:
        return "v2"

    @command
    def health(self) -> bool:
        return False
"""


async def test_a_version_that_fails_its_probation_leaves_no_copy_behind(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    directory = plugins("acme.tool", TOOL.format(label="v1"))
    async with make_host(probation=0.3) as host:
        assert host.store is not None
        edit(directory, "v2", "1.1.0")
        (directory / "main.py").write_text(UNHEALTHY)
        with pytest.raises(PlugbayError, match=r"failed its probation; 1\.0\.0 keeps serving"):
            await host.reload("acme.tool")
        assert await host.call("acme.tool", "label") == "v1"
        # while the host runs: no half-made copy of 1.1.0 in the store, and none kept
        await host.store.settled()
        assert leftovers(tmp_path / "state", "acme.tool") == []
        assert host.store.versions("acme.tool") == ["1.0.0"]
        assert not host.store.kept("acme.tool", "1.1.0")
        # a rollback still returns to what served before, as kept
        edit(directory, "v3", "1.2.0")
        await host.reload("acme.tool")
        assert (await host.rollback("acme.tool")).version == "1.0.0"
        assert await host.call("acme.tool", "label") == "v1"


async def test_the_loop_serves_while_a_large_plugin_is_copied(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    directory = plugins("acme.tool", TOOL.format(label="v1"))
    data = directory / "data"
    data.mkdir()
    for i in range(200):  # a plugin with many files: a copy of some size
        (data / f"{i}.txt").write_text("x" * 4096)
    async with make_host() as host:
        assert host.store is not None
        # a call is answered while the copy may still be placed in the keeper thread,
        # and a rollback's reader (the store) sees the whole copy once it is kept
        answers = await asyncio.gather(*(host.call("acme.tool", "label") for _ in range(20)))
        assert answers == ["v1"] * 20
        kept = host.store.manifest("acme.tool", "1.0.0")
        assert kept.root is not None
        assert len(list((kept.root / "data").iterdir())) == 200
