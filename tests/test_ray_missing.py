"""An operator's mistakes on Ray said where they are, on the session's cluster
(``tests/ray_support.py``): a package the plugin's code imports that its node lacks (said
as the node's, not "the host's environment"), and a resource no node has (named with the
command that lists what each node has, not ``ray status``, which finds no ``local``
cluster of the host's). The host serves its other plugins meanwhile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugbay.isolation.policy import IsolationPolicy
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_host
from tests.test_init_failure_alike import PING

NEEDS = """
import nodes_lack_this_package
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [False, True], ids=["agent", "actor"])
async def test_a_package_missing_on_the_node_is_said_as_the_nodes_with_what_to_do(
    ray_cluster: Any, tmp_path: Path, trusted: bool
) -> None:
    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.ok", PING, extra=on_node("node-a"))
    path = plugins("acme.needs", NEEDS, extra=on_node("node-a"))
    policy = IsolationPolicy.from_config(
        {
            "ray": {"address": ray_cluster.address, "plugins": ["acme.*"]},
            "policy": {"inline": ["acme.*"] if trusted else []},
        }
    )
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        error = host.plugin("acme.needs").error
        assert error is not None
        assert error.message == "importing 'main' failed: no module named 'nodes_lack_this_package'"
        assert error.where == f"{path / 'main.py'}:2"  # the host's file
        node_a = ray_cluster.nodes["node-a"].node_id[:12]
        assert error.hint is not None
        assert f"missing on Ray node {node_a}" in error.hint, error.hint
        assert "python-dependencies" in error.hint
        assert "host's environment" not in error.hint  # not the machine to install it on
        assert await host.call("acme.ok", "ping") == "pong"


@pytest.mark.slow
async def test_a_resource_no_node_has_names_the_command_that_lists_what_each_has(
    ray_cluster: Any, tmp_path: Path
) -> None:
    plugins = PluginFactory(tmp_path / "plugins")
    plugins("other.ok", PING)  # on this machine: a 2 s start-timeout is for Ray's only
    plugins("acme.big", PING, extra=on_node("no-such-node"))
    policy = IsolationPolicy.from_config(
        {"ray": {"address": ray_cluster.address, "plugins": ["acme.*"], "start-timeout": 2}}
    )
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        rec = host.plugin("acme.big")
        assert rec.state == "failed"
        assert rec.error is not None
        assert rec.error.message == (  # at once: no node has it (tests/test_ray_fit.py)
            'it asks for [resources] custom "no-such-node" = 1, more than any node of the '
            "Ray cluster has (none has it)"
        )
        assert rec.error.hint is not None
        assert "'plugbay nodes' lists what each node has" in rec.error.hint
        assert "ray status" not in rec.error.hint
        assert await host.call("other.ok", "ping") == "pong"
