"""A ``[plugins."ID"]`` table of the host config file that names no plugin found is
reported at its ``FILE:LINE``: in a file of several tables, "at plugbay.toml" left the
operator to search for the typo. The plugins found start as they would."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.asyncio]

CONFIG = """\
# the host's config
[plugins."acme.calc"]
# nothing set yet

[plugins."acme.clac"]
level = 2

[plugins]
"acme.cacl" = { level = 3 }
"""


async def test_a_table_for_no_plugin_found_is_named_at_its_line(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.calc")
    config_file = tmp_path / "plugbay.toml"
    config_file.write_text(CONFIG)
    async with Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, config_file=config_file
    ) as host:
        said = {p.details["plugin"]: (p.where, p.message) for p in host.problems}
        assert str(host.plugin("acme.calc").state) == "active"
    assert said["acme.clac"] == (
        f"{config_file}:5",
        "'acme.clac' is not the id of any plugin found",
    )
    assert said["acme.cacl"][0] == f"{config_file}:9"
    assert "acme.calc" not in said  # its table names a plugin found


async def test_a_grant_for_no_plugin_found_is_named_at_its_line(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.calc")
    config_file = tmp_path / "plugbay.toml"
    config_file.write_text(
        '[plugins."acme.calc"]\n\n[policy.grants]\n"acme.calc" = ["subprocess"]\n'
        '# a typo\n"acme.clac" = ["subprocess"]\n'
    )
    async with Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, config_file=config_file
    ) as host:
        said = {p.details["plugin"]: (p.where, p.message) for p in host.problems}
        assert str(host.plugin("acme.calc").state) == "active"
    assert said == {
        "acme.clac": (f"{config_file}:6", "'acme.clac' is not the id of any plugin found")
    }
