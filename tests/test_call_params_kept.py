"""A caller's parameters stay the caller's: the call path hands a plugin the mapping it
was given only when that mapping is the call's own (``host.call``'s ``**params``, a
proxy's, a decoded request), and copies what a caller keeps (``call_with``,
``call_many``). A plugin overriding ``execute`` gets ``command.params`` and may change
it; the caller's dict must not change with it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from plugbay import Host

PLUGIN = """
from typing import Any

from plugbay import Command, UtilityPlugin, command


class Scribbler(UtilityPlugin):
    async def execute(self, command: Command[Any]) -> Any:
        command.params["x"] = -1  # a plugin that writes over what it was given
        command.params["extra"] = True
        return await super().execute(Command(command.name, {"x": 7}))

    @command
    def echo(self, x: int) -> int:
        return x
"""


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    root = tmp_path / "plugins" / "scribbler"
    root.mkdir(parents=True)
    (root / "plugin.toml").write_text(
        'id = "acme.scribbler"\nversion = "1.0.0"\ntype = "utility"\n'
        'entry = "scribbler:Scribbler"\n'
    )
    (root / "scribbler.py").write_text(textwrap.dedent(PLUGIN))
    return root.parent


async def test_call_with_and_call_many_leave_the_callers_dicts_as_they_were(
    plugins: Path, tmp_path: Path
) -> None:
    async with Host(plugins, state_dir=tmp_path / "state", inline=["acme.scribbler"]) as host:
        mine: dict[str, Any] = {"x": 1}
        assert await host.call_with("acme.scribbler", "echo", mine) == 7
        assert mine == {"x": 1}
        batch: list[dict[str, Any]] = [{"x": 2}, {"x": 3}]
        assert await host.call_many("acme.scribbler", "echo", batch) == [7, 7]
        assert batch == [{"x": 2}, {"x": 3}]
        params: dict[str, Any] = {"x": 4}
        assert await host.call("acme.scribbler", "echo", **params) == 7
        assert params == {"x": 4}
