"""A plugin on a Ray node is told at load what it may require, as a local worker is
(``isolation.offered_services``, sent in the same ``Load`` frame): the host's service
without a permission for any of its commands is refused at load in the broker's words;
granted ``host:metrics-read`` alone, it requires it and asks its ``health``, and its
other commands are refused at their call (``isolation.host_data``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugbay.api.errors import PlugbayError
from plugbay.isolation.policy import IsolationPolicy
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_handle, ray_host
from tests.test_host_data_require import METRICS_READ, WATCHER
from tests.test_services_at_load import reason_without_id


@pytest.mark.slow
async def test_the_host_service_on_a_ray_node_is_checked_at_load_and_at_each_call(
    ray_cluster: Any, tmp_path: Path
) -> None:
    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.blind", WATCHER, extra=on_node("node-a"))
    plugins("acme.watcher", WATCHER, extra=on_node("node-a") + METRICS_READ)
    policy = IsolationPolicy.from_config(
        {"ray": {"address": ray_cluster.address, "plugins": ["acme.*"]}, "policy": {"inline": []}}
    )
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        assert reason_without_id(host, "acme.blind") == (
            "plugin 'PLUGIN': the host refused the service 'plugbay.host', which needs "
            "host:state-read: not declared or granted. ask for it in the manifest "
            '([permissions] host = ["state-read"]), then the operator runs '
            "'plugbay grant PLUGIN host:state-read'"
        )
        assert reason_without_id(host, "acme.watcher").endswith(
            "which needs host:metrics-read: not declared or granted. "
            "the operator can run 'plugbay grant PLUGIN host:metrics-read'"
        )
        await host.grant("acme.watcher", "host:metrics-read")
        await host.load("acme.watcher")
        assert ray_handle(host, "acme.watcher").mode == "agent"
        assert await host.call("acme.watcher", "health_of", plugin="acme.watcher") == "green"
        with pytest.raises(PlugbayError) as caught:
            await host.call("acme.watcher", "plugin_ids")
        assert (
            "the host refused 'plugbay.host.plugins', which needs host:state-read: "
            "not declared or granted"
        ) in str(caught.value)
