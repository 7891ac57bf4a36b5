"""A plugin on a Ray node runs the worker's code (``isolation._ray_agent``): its emit
over the payload bound (64 KiB) is refused as a local worker's is, in the host's words
and as the host's own, the plugin keeps serving, and a neighbour on the same node
answers. On the session's cluster (``tests/ray_support.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugbay.api.errors import ResourceLimitExceeded
from plugbay.isolation.policy import IsolationPolicy
from tests.conftest import PluginFactory
from tests.ray_support import on_node, ray_handle, ray_host
from tests.test_emit_oversized import EMITTER, NEIGHBOUR

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("trusted", [False, True], ids=["sandboxed", "trusted"])
async def test_an_oversized_emit_on_a_ray_node_is_the_hosts_refusal_and_the_node_serves_on(
    ray_cluster: Any, plugins: PluginFactory, tmp_path: Path, trusted: bool
) -> None:
    """Sandboxed (a worker forked on the node) and trusted (no sandbox)."""
    plugins("acme.emitter", EMITTER, extra='[events]\nemits = ["blob.made"]\n' + on_node("node-a"))
    plugins("acme.neighbour", NEIGHBOUR, extra=on_node("node-a"))
    config = {
        "ray": {"address": ray_cluster.address, "plugins": ["*"]},
        "policy": {"inline": ["*"] if trusted else []},
    }
    policy = IsolationPolicy.from_config(config)
    async with ray_host(plugins.root, tmp_path / "state", init_timeout=60.0, policy=policy) as host:
        emitter = ray_handle(host, "acme.emitter")
        assert ray_cluster.name_of(emitter.node) == "node-a"
        assert ray_cluster.name_of(ray_handle(host, "acme.neighbour").node) == "node-a"
        placement = host.plugin("acme.emitter").placement
        assert placement is not None and placement.sandboxed is not trusted
        before = emitter.pid

        with pytest.raises(ResourceLimitExceeded) as caught:
            await host.call("acme.emitter", "emit", size=100_000)
        error = caught.value
        assert error.message == (
            "the payload of event 'blob.made' is 100,011 bytes, over the 65,536-byte bound; "
            "the event was refused"
        )
        assert error.hint == "send a key or an id in the event and keep the data in context.storage"
        assert error.details == {"limit": "event_payload", "relayed_by": "acme.emitter"}

        said = await host.call("acme.emitter", "emit_caught", size=2 * 1024 * 1024)
        assert said == (
            "ResourceLimitExceeded: the payload of event 'blob.made' is 2,097,163 bytes, over "
            "the 65,536-byte bound; the event was refused"
        )
        assert ray_handle(host, "acme.emitter").pid == before  # its worker was not replaced
        assert host.manager.plugin_events.emitted.get(("acme.emitter", "blob.made"), 0) == 0
        assert await host.call("acme.emitter", "emit", size=10) == 0  # it keeps serving
        assert host.manager.plugin_events.emitted[("acme.emitter", "blob.made")] == 1
        assert await host.call("acme.neighbour", "ping") == "pong"
