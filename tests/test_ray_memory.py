"""What bounds a Ray plugin's memory, said where the operator looks: a trusted plugin
run as a bare actor has no sandbox, and Ray's ``memory`` only reserves room on its
node, so ``plugbay info`` says its limits are not enforced; a sandboxed worker of its
node's agent keeps them (its limits are shown as they are)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugbay.cli._plugin_views import _sandbox_facts
from plugbay.isolation.policy import IsolationPolicy
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_host

PLUGIN = "acme.hungry"
CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def ping(self) -> str:
        return "pong"
"""


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [True, False], ids=["bare-actor", "sandboxed"])
async def test_info_says_whether_a_ray_plugins_memory_limit_is_enforced(
    ray_cluster: Any, tmp_path: Path, plugins: PluginFactory, trusted: bool
) -> None:
    directory = plugins.root / "hungry"
    directory.mkdir(parents=True)
    (directory / "main.py").write_text(CODE)
    (directory / "plugin.toml").write_text(
        f'id = "{PLUGIN}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
        + on_node("node-b")
        + 'memory = "256MiB"\n'
    )
    policy = IsolationPolicy.from_config(
        {
            "ray": {"address": ray_cluster.address, "plugins": ["*"]},
            "policy": {"inline": ["*"] if trusted else []},
        }
    )
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        assert await host.call(PLUGIN, "ping") == "pong"
        info = host.info(PLUGIN)
    limits = dict(_sandbox_facts(info, info["manifest"]))["limits"]
    assert "memory 256 MiB" in limits
    if trusted:
        assert info["location"]["mode"] == "actor"
        assert "not enforced: a bare Ray actor has no sandbox" in limits
        assert "only reserves room on its node for Ray's scheduler" in limits
        assert "[ray] bare-actors = false" in limits
    else:
        assert info["location"]["mode"] == "agent"
        assert "not enforced" not in limits
