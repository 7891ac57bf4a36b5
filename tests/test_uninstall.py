"""Uninstall: refused while active plugins need it, else stopped and removed; data kept
unless purged; recorded in the history; through the running host's API as well."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay.api.errors import DependentsError, PlugbayError
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory

NOTES = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def remember(self, text: str) -> int:
        self.context.storage.set("note", text)
        return 1

    @command
    def recall(self) -> str:
        return self.context.storage.get("note", "")

    @command
    def version(self) -> str:
        return "{version}"
"""


def notes(factory: PluginFactory, plugin_id: str, version: str, extra: str = "") -> Path:
    return factory(plugin_id, NOTES.replace("{version}", version), version=version, extra=extra)


@pytest.fixture
def sources(tmp_path: Path) -> PluginFactory:
    return PluginFactory(tmp_path / "sources")


@pytest.fixture
def host_here(make_host: Callable[..., Host], tmp_path: Path) -> Callable[..., Host]:
    (tmp_path / "plugins").mkdir(exist_ok=True)
    return lambda **kw: make_host(plugins_dir=tmp_path / "plugins", **kw)


async def test_refused_while_an_active_plugin_needs_it_then_removed_with_its_data_kept(
    sources: PluginFactory, host_here: Callable[..., Host], tmp_path: Path
) -> None:
    async with host_here() as host:
        host.install(notes(sources, "acme.base", "1.0.0"))
        host.install(notes(sources, "acme.app", "1.0.0", '[dependencies]\n"acme.base" = "^1"\n'))
    async with host_here() as host:
        assert await host.call("acme.app", "remember", text="kept") == 1
        with pytest.raises(DependentsError, match=r"acme\.app need it and are active"):
            await host.uninstall("acme.base")
        assert await host.call("acme.base", "version") == "1.0.0"  # still serving

        done = await host.uninstall("acme.app")
        assert done["versions"] == ["1.0.0"] and done["stopped"] is True
        assert not (tmp_path / "state" / "store" / "acme.app" / "1.0.0").exists()
        assert "acme.app" not in [r.id for r in host.plugins()]
        assert await host.call("acme.base", "version") == "1.0.0"  # the neighbour answers
        [event] = [e for e in host.history("acme.app") if e.action == "uninstall"]
        assert event.version == "1.0.0"
        # now nothing needs the base: it goes too
        assert (await host.uninstall("acme.base"))["stopped"] is True
    async with host_here() as host:
        assert host.plugins() == []  # a restart does not bring them back
    # installed again, the plugin finds the data it had
    async with host_here() as host:
        host.install(notes(sources, "acme.base", "1.0.0", 'description = "again"\n'))
        host.install(notes(sources, "acme.app", "1.0.1", '[dependencies]\n"acme.base" = "^1"\n'))
    async with host_here() as host:
        assert await host.call("acme.app", "recall") == "kept"


async def test_purge_removes_the_data_and_one_version_leaves_the_others(
    sources: PluginFactory, host_here: Callable[..., Host], tmp_path: Path
) -> None:
    async with host_here() as host:
        host.install(notes(sources, "acme.tool", "1.0.0"))
        host.install(notes(sources, "acme.tool", "1.1.0"))
    async with host_here() as host:
        assert await host.call("acme.tool", "version") == "1.1.0"
        await host.call("acme.tool", "remember", text="secret")
        older = await host.uninstall("acme.tool", "1.0.0")
        assert older == {**older, "versions": ["1.0.0"], "stopped": False, "remaining": ["1.1.0"]}
        assert await host.call("acme.tool", "version") == "1.1.0"  # not the one serving
        with pytest.raises(PlugbayError, match=r"version 9.9.9 is not installed"):
            await host.uninstall("acme.tool", "9.9.9")
        done = await host.uninstall("acme.tool", purge=True)
        assert done["stopped"] is True
        assert str(tmp_path / "state" / "data" / "acme.tool") in done["purged"]
        assert not (tmp_path / "state" / "data" / "acme.tool").exists()
        with pytest.raises(PlugbayError, match="is not installed in the plugin store"):
            await host.uninstall("acme.tool")


async def test_a_plugin_from_a_plugins_directory_is_not_uninstalled(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    notes(plugins, "acme.local", "1.0.0")
    async with make_host() as host:
        with pytest.raises(PlugbayError, match="is not installed in the plugin store") as caught:
            await host.uninstall("acme.local")
        assert "removing its directory" in (caught.value.hint or "")
        assert await host.call("acme.local", "version") == "1.0.0"


def test_uninstalling_a_typo_names_the_installed_plugin_it_is_near(
    sources: PluginFactory, tmp_path: Path
) -> None:
    """A mistyped id was refused with "'plugbay list' shows the plugins there are" and no
    suggestion, where every other command taking an id names the closest one."""
    (tmp_path / "plugins").mkdir()
    done = plugbay("install", str(notes(sources, "acme.tool", "1.0.0")), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    typo = plugbay("uninstall", "acme.tol", cwd=tmp_path)
    assert typo.returncode == 1
    said = " ".join(typo.stderr.split())
    assert "plugin 'acme.tol': is not installed in the plugin store" in said, said
    assert "did you mean 'acme.tool'?" in said, said
    answer = json.loads(plugbay("uninstall", "acme.tol", "--json", cwd=tmp_path).stdout)
    assert answer["error"]["hint"] == "did you mean 'acme.tool'?"


def test_uninstall_through_the_running_hosts_api(sources: PluginFactory, tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    for pid, extra in (("acme.base", ""), ("acme.app", '[dependencies]\n"acme.base" = "^1"\n')):
        done = plugbay("install", str(notes(sources, pid, "1.0.0", extra)), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    with plugbay_run(tmp_path, "--plugins", "plugins"):
        refused = plugbay("uninstall", "acme.base", cwd=tmp_path)
        assert refused.returncode == 1
        assert "acme.app need it and are active" in " ".join(refused.stderr.split())
        done = plugbay("uninstall", "acme.app@1.0.0", "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert (answer["versions"], answer["stopped"]) == (["1.0.0"], True)
        assert answer["data"] == ".plugbay/data/acme.app"  # as --state names it (the default)
        listed = plugbay("list", "--json", cwd=tmp_path)
        assert [r["id"] for r in json.loads(listed.stdout)] == ["acme.base"]
    history = plugbay("history", "acme.app", "--json", cwd=tmp_path)
    assert "uninstall" in [e["action"] for e in json.loads(history.stdout)]
