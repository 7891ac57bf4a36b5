"""What a host says when it cannot choose versions: the requirements that conflict, each
with the manifest that sets it, so the user knows which file to change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugbay.api.errors import ResolutionError
from tests._cli import plugbay
from tests.conftest import PluginFactory


async def test_two_dependents_in_conflict_are_named_with_their_manifests(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins("acme.base", version="1.0.0")
    plugins("acme.base", version="2.0.0")
    new = plugins("acme.new", extra='[dependencies]\n"acme.base" = "^2"\n')
    old = plugins("acme.old", extra='[dependencies]\n"acme.base" = "^1"\n')
    async with make_host() as host:
        # one of the two loads (the first by id, with the newest base), the other says why not
        loaded = {p.id for p in host.plugins() if str(p.state) == "active"}
        assert loaded == {"acme.base", "acme.new"}
        assert await host.call("acme.base", "ping") == "pong from acme.base 2.0.0"
        error = host.plugin("acme.old").error
        assert isinstance(error, ResolutionError)
        assert (
            "'acme.new' 1.0.0 requires 'acme.base' ^2 and "
            "'acme.old' 1.0.0 requires 'acme.base' ^1" in error.message
        )
        # what to change, and where: the two ranges in their two files, not acme.base's
        assert error.hint == (
            "install a version of 'acme.base' that every range allows, or change a range: "
            f"^2 under [dependencies] in {new / 'plugin.toml'}:6; "
            f"^1 under [dependencies] in {old / 'plugin.toml'}:6"
        )
        assert "acme.base-" not in error.hint  # its directories: nothing there to change


async def test_a_pre_release_left_out_of_a_range_is_said_to_be_one(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins("acme.next", version="1.1.0-rc.1")
    app = plugins("acme.app", extra='[dependencies]\n"acme.next" = ">=1.0.0-rc.1"\n')
    async with make_host() as host:
        assert await host.call("acme.next", "ping") == "pong from acme.next 1.1.0-rc.1"
        error = host.plugin("acme.app").error
        assert isinstance(error, ResolutionError)
        assert "versions found: 1.1.0-rc.1 — none satisfies every requirement" in error.message
        assert "(1.1.0-rc.1 is a pre-release, which a range contains only when" in error.message
        assert error.hint is not None and str(app / "plugin.toml") in error.hint


def test_deps_shows_a_cycle_and_marks_a_version_outside_its_range(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.ring-a", extra='[dependencies]\n"acme.ring-b" = "^1"\n')
    plugins("acme.ring-b", extra='[dependencies]\n"acme.ring-a" = "^1"\n')
    plugins("acme.lib")
    plugins("acme.app", extra='[dependencies]\n"acme.lib" = "^2"\n')
    shown = plugbay("deps", "--state", str(tmp_path / "state"), cwd=tmp_path)
    assert shown.returncode == 1
    tree = shown.stdout.split("\nacme.")[0]  # the tree, before the explanations
    # the plugins on the cycle, needed only by each other, are in the tree, marked
    assert "✗ acme.ring-a dependency_cycle" in tree and "↻ cycle" in tree
    # acme.lib 1.0.0 is chosen, but not for acme.app: its ^2 is not met, and says so
    assert "✗ acme.lib ^2 → 1.0.0 (not in the range)" in tree


async def test_a_dependency_range_with_no_room_is_refused_at_load_as_empty(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins("acme.lib", version="1.0.0")
    app = plugins("acme.app", extra='[dependencies]\n"acme.lib" = ">1,<1.0.0.post0"\n')
    async with make_host() as host:
        assert await host.call("acme.lib", "ping") == "pong from acme.lib 1.0.0"
        error = host.plugin("acme.app").error
        assert isinstance(error, ResolutionError)
        assert error.message == (
            "cannot be loaded: 'acme.app' 1.0.0 requires 'acme.lib' >1,<1.0.0.post0, a range "
            "that matches no version at all (it is empty)"
        )
        assert error.hint == (
            f"correct that range under [dependencies] in {app / 'plugin.toml'}:6: no version is "
            "in '>1' and '<1.0.0.post0' at once, so installing a version of 'acme.lib' will "
            "not help; write the versions it works with, e.g. '>=1.2,<2' or '^1.2.3' "
            "(docs/version-ranges.md)"
        )


async def test_a_plugin_for_another_host_says_which_host_and_where(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    future = plugins("acme.future", extra='host = ">=5"\n')
    typo = plugins("acme.typo", extra='host = ">=3 <2"\n')
    plugins("acme.user", extra='[dependencies]\n"acme.future" = "^1"\n')
    plugins("acme.ok")
    async with make_host() as host:
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"
        error = host.plugin("acme.future").error
        assert error.message == (
            "cannot be loaded: no version of 'acme.future' runs on this host, "
            f"plugbay {host.version}: 1.0.0 needs host >=5"
        )
        # not "change a range": no dependency range is at fault, the host range decides
        assert error.hint == (
            f"install a version of 'acme.future' whose host range contains {host.version}, "
            f"or run a plugbay that its range allows (host in {future / 'plugin.toml'})"
        )
        # a host range no version is in is a mistake in its text (docs/version-ranges.md)
        error = host.plugin("acme.typo").error
        assert error.hint == (
            f'correct host = ">=3 <2" in {typo / "plugin.toml"}: that range matches no '
            "version at all ('>=3' (from 3.0.0) is above '<2' (below 2.0.0)); write the "
            "versions it works with, e.g. '>=1.2,<2' or '^1.2.3' (docs/version-ranges.md)"
        )
        # a dependent names it once: its reason, without "cannot be loaded" twice
        error = host.plugin("acme.user").error
        assert error.message == (
            "cannot be loaded: it needs 'acme.future', which cannot be loaded: no version of "
            f"'acme.future' runs on this host, plugbay {host.version}: 1.0.0 needs host >=5"
        )


async def test_a_dependency_problem_names_the_line_that_asks_for_it(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    # the line plugbay validate names: the dependency's key, not the file or its table
    plugins("acme.lib", version="1.0.0")
    app = plugins(
        "acme.app",
        extra='description = "an app"\n\n# what it needs\n[dependencies]\n'
        '"acme.gone" = "^1"\n"acme.lib" = "^1"\n',
    )
    picky = plugins("acme.picky", extra='[dependencies]\n# newer only\n"acme.lib" = ">=2"\n')
    async with make_host() as host:
        assert await host.call("acme.lib", "ping") == "pong from acme.lib 1.0.0"
        missing = host.plugin("acme.app").error
        assert missing is not None and missing.hint == (
            "install 'acme.gone', or remove the dependency: "
            f"^1 under [dependencies] in {app / 'plugin.toml'}:9"
        )
        conflict = host.plugin("acme.picky").error
        assert conflict is not None and conflict.hint is not None
        assert conflict.hint.endswith(f">=2 under [dependencies] in {picky / 'plugin.toml'}:7")
