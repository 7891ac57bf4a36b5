"""``Host(inline=..., load=...)`` given a string, the mistake mypy lets through (a ``str``
is an ``Iterable[str]``): refused where it is written, never read a character at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugbay import Host, ParameterError
from tests.conftest import PluginFactory

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


def test_inline_as_a_string_is_refused_not_read_as_the_pattern_star(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    # read a character at a time, "acme.*" holds the pattern "*": every plugin, the
    # other.stranger below included, would run in the host's process, unsandboxed
    plugins("acme.mine", CODE)
    plugins("other.stranger", CODE)
    with pytest.raises(ParameterError) as caught:
        Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, inline="acme.*")
    assert str(caught.value) == (
        "inline takes a list of plugin ids, not the string 'acme.*': each of its characters "
        "would be read as an id (at Host(inline=...)). write inline=['acme.*']"
    )


def test_load_as_a_string_is_refused_naming_the_list_to_write(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.mine", CODE)
    with pytest.raises(ParameterError) as caught:
        Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, load="acme.mine")
    assert caught.value.where == "Host(load=...)"
    assert caught.value.hint == "write load=['acme.mine']"


def test_an_id_that_is_not_a_string_is_refused(plugins: PluginFactory, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"inline takes plugin ids \(strings\), not 42"):
        Host(plugins.root, state_dir=tmp_path / "state", inline=["acme.*", 42])  # type: ignore[list-item]


async def test_a_list_trusts_only_what_it_names(plugins: PluginFactory, tmp_path: Path) -> None:
    plugins("acme.mine", CODE)
    plugins("other.stranger", CODE)
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, inline=("acme.*",),
                load=["acme.mine", "other.stranger"])  # fmt: skip
    async with host:
        assert await host.call("other.stranger", "ping") == "pong"
        assert host.plugin("acme.mine").isolation == "inline"
        assert host.plugin("other.stranger").isolation != "inline"


async def test_patterns_given_once_through_are_all_kept(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A generator is read once: the policy trusts what the host read from it, not the
    spent iterator (its plugins would run sandboxed, though named inline)."""
    plugins("acme.mine", CODE)
    host = Host(plugins.root, state_dir=tmp_path / "state", entry_points=False,
                inline=(pattern for pattern in ["acme.*"]))  # fmt: skip
    async with host:
        assert host.plugin("acme.mine").isolation == "inline"


async def test_the_default_plugins_directory_missing_is_noted_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An application on entry points alone names no plugins directory: the default,
    ``plugins``, missing where it runs, is a problem noted, not a refused start."""
    monkeypatch.chdir(tmp_path)
    async with Host(state_dir=tmp_path / "state", entry_points=False) as host:
        assert any("does not exist" in str(p) for p in host.problems)
    with pytest.raises(ParameterError, match="does not exist"):
        await Host(tmp_path / "typo", state_dir=tmp_path / "state2").start()
