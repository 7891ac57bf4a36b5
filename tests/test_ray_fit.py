"""A Ray plugin asking for more than any node of the cluster has is refused at once, not
after ``[ray] start-timeout`` (``isolation._ray_fit``): the resource, the amount, the
largest node's total and the manifest's line are said, and the host serves its other
plugins. On the session's cluster (``tests/ray_support.py``: nodes of one CPU each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugbay.isolation.policy import IsolationPolicy
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_host
from tests.test_init_failure_alike import PING

#: a start that waited for a node would fail after it, with the timeout's words
LONG = 90


@pytest.mark.slow
async def test_more_cpus_than_any_node_has_is_refused_at_once_naming_the_line(
    ray_cluster: Any, tmp_path: Path
) -> None:
    plugins = PluginFactory(tmp_path / "plugins")
    plugins("other.ok", PING)  # on this machine
    plugins("acme.fits", PING, extra="[resources]\nnum-cpus = 1\n")
    big = plugins("acme.big", PING, extra="[resources]\nnum-cpus = 64\n")
    policy = IsolationPolicy.from_config(
        {"ray": {"address": ray_cluster.address, "plugins": ["acme.*"], "start-timeout": LONG}}
    )
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        rec = host.plugin("acme.big")
        assert rec.state == "failed", rec.reason
        assert rec.error is not None
        assert rec.error.message == (
            "it asks for [resources] num-cpus = 64, more than any node of the Ray cluster "
            "has (the largest has 1)"
        )
        assert rec.error.where == f"{big / 'plugin.toml'}:6"
        assert rec.error.hint is not None
        assert "'plugbay nodes' lists what each node has" in rec.error.hint
        # what a node has in total, not what is free now: one CPU, taken or not, fits
        assert host.plugin("acme.fits").state == "active", host.plugin("acme.fits").reason
        assert await host.call("acme.fits", "ping") == "pong"
        assert await host.call("other.ok", "ping") == "pong"


@pytest.mark.slow
async def test_a_custom_resource_no_node_has_is_refused_at_once(
    ray_cluster: Any, tmp_path: Path
) -> None:
    plugins = PluginFactory(tmp_path / "plugins")
    big = plugins("acme.nowhere", PING, extra=on_node("no-such-node"))
    policy = IsolationPolicy.from_config(
        {"ray": {"address": ray_cluster.address, "plugins": ["acme.*"], "start-timeout": LONG}}
    )
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        rec = host.plugin("acme.nowhere")
        assert rec.state == "failed", rec.reason
        assert rec.error is not None
        assert rec.error.message == (
            'it asks for [resources] custom "no-such-node" = 1, more than any node of the '
            "Ray cluster has (none has it)"
        )
        assert rec.error.where == f"{big / 'plugin.toml'}:6"
