"""What an application that embeds ``Host`` is told when it writes an argument wrong:
a time-out of 0 (read as "no limit" by some APIs) or one that is not a number, a crash
count of 0, a plugins directory that does not exist, a plugin id no plugin has, or a
look at the plugins before the start. Each was taken silently (or answered in the CLI's
words) and is now refused where it is written, in the application's words."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from plugbay import Host, HostStateError, ParameterError, PluginNotFound, PluginTimeout
from tests.conftest import PluginFactory

SLOW = """
import asyncio

from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def nap(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "awake"
"""

REFUSED: list[tuple[str, Any]] = [
    ("call_timeout", 0),
    ("call_timeout", -1),
    ("call_timeout", math.inf),
    ("call_timeout", math.nan),
    ("call_timeout", None),
    ("call_timeout", "5"),
    ("init_timeout", 0),
    ("cleanup_timeout", -1.0),
    ("crash_window", 0),
    ("restart_backoff", -0.5),
    ("probation", math.inf),
    ("max_crashes", 0),
    ("max_crashes", True),
    ("max_crashes", 2.5),
]


@pytest.mark.parametrize(("argument", "value"), REFUSED, ids=lambda a: repr(a))
def test_a_time_or_count_that_is_no_number_of_it_is_refused_naming_the_argument(
    argument: str, value: Any, plugins: PluginFactory, tmp_path: Path
) -> None:
    with pytest.raises(ParameterError) as caught:
        Host(plugins.root, state_dir=tmp_path / "state", **{argument: value})
    assert caught.value.where == f"Host({argument}=...)"
    assert str(caught.value).startswith(f"{argument} takes ")
    assert f"write {argument}=" in (caught.value.hint or "")


def test_a_time_out_of_0_is_no_time_not_no_limit(plugins: PluginFactory, tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as caught:
        Host(plugins.root, state_dir=tmp_path / "state", call_timeout=0)
    assert str(caught.value) == (
        "call_timeout takes a number of seconds above 0, not 0: 0 or less is no time at "
        "all, not no limit (at Host(call_timeout=...)). write call_timeout=30.0 (the "
        "default), or a larger number of seconds for longer work"
    )


async def test_0_where_it_means_at_once_is_taken_and_a_time_out_still_bounds_a_call(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.slow", SLOW)
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False,
                inline=["*"], call_timeout=0.2, probation=0, restart_backoff=0)  # fmt: skip
    async with host:
        assert await host.call("acme.slow", "nap", seconds=0) == "awake"
        with pytest.raises(PluginTimeout):
            await host.call("acme.slow", "nap", seconds=1.0)


async def test_a_plugins_directory_that_does_not_exist_is_refused_at_the_start(
    tmp_path: Path,
) -> None:
    """It only logged "create it, or ... --plugins DIR", the CLI's words, and started
    with no plugin at all."""
    state = tmp_path / "state"
    host = Host(tmp_path / "plugnis", state_dir=state, entry_points=False)
    with pytest.raises(ParameterError) as caught:
        await host.start()
    said = str(caught.value)
    assert said.startswith(f"the plugins directory {tmp_path / 'plugnis'} does not exist")
    assert caught.value.where == "Host(plugins_dir=...)"
    assert "--plugins" not in said
    assert not host.started
    # nothing was claimed: the state directory is free for the host meant
    (tmp_path / "plugins").mkdir()
    async with Host(tmp_path / "plugins", state_dir=state, entry_points=False) as meant:
        assert meant.started


async def test_a_file_given_as_the_plugins_directory_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "plugbay.toml").write_text("")
    host = Host(tmp_path / "plugbay.toml", state_dir=tmp_path / "state", entry_points=False)
    with pytest.raises(ParameterError, match=r"plugbay\.toml is not a directory"):
        await host.start()


async def test_note_starts_without_the_directory_and_keeps_the_problem(
    tmp_path: Path,
) -> None:
    """What ``plugbay run -p typo`` does (docs/cli.md), asked for by name."""
    host = Host(tmp_path / "nowhere", state_dir=tmp_path / "state", entry_points=False,
                missing_plugins_dir="note")  # fmt: skip
    async with host:
        noted = [p for p in host.problems if str(tmp_path / "nowhere") in p.message]
        assert [p.message for p in noted] == [
            f"the plugins directory {tmp_path / 'nowhere'} does not exist: no plugin is found there"
        ]
    # the start refused says the same, and what it did instead
    refused = Host(tmp_path / "nowhere", state_dir=tmp_path / "state", entry_points=False)
    with pytest.raises(ParameterError) as caught:
        await refused.start()
    assert caught.value.message == (
        f"the plugins directory {tmp_path / 'nowhere'} does not exist: the host is not "
        "started without its plugins"
    )
    with pytest.raises(ParameterError, match="missing_plugins_dir takes 'refuse' or 'note'"):
        Host(tmp_path, missing_plugins_dir="skip")  # type: ignore[arg-type]


async def test_an_unknown_plugin_is_answered_with_the_call_an_application_makes(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.slow", SLOW)
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        with pytest.raises(PluginNotFound) as caught:
            await host.call("acme.nothing", "nap", seconds=0)
    assert "host.plugins() in an application" in (caught.value.hint or "")


async def test_the_plugins_before_the_start_are_refused_not_an_empty_list(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.slow", SLOW)
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False)
    with pytest.raises(HostStateError, match="cannot list the plugins: this host is not started"):
        host.plugins()
    async with host:
        assert [r.id for r in host.plugins()] == ["acme.slow"]
    assert [r.id for r in host.plugins()] == ["acme.slow"]  # after the stop: as it was
