"""Operating plugins on Ray: where each runs (the nodes view of the API and the
dashboard), what happens when the cluster's head goes, the sandbox's own attacks and
the storage quota from a Ray node, and plugin events to and from a Ray plugin.

On the session's 3-node cluster (``tests/ray_support.py``) except the head's loss,
which has a cluster of its own in a process of its own (Ray ends a driver it has
lost the head of unless told otherwise, and a killed head is not given back)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.isolation.policy import IsolationPolicy
from plugbay.isolation.ray import RayHandle
from plugbay.runtime.host import Host
from plugbay.web import HttpServer, create_app
from plugbay.web.token import TokenFile
from tests.conftest import PluginFactory

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


def on_node(name: str) -> str:
    return f'[resources]\ncustom = {{ "{name}" = 1 }}\n'


def ray_policy(cluster: Any, *, trusted: tuple[str, ...] = ()) -> IsolationPolicy:
    return IsolationPolicy.from_config(
        {
            "ray": {"address": cluster.address, "plugins": ["acme.on-*"]},
            "policy": {"inline": list(trusted)},
        }
    )


@pytest.fixture
def make(
    tmp_path: Path, plugins: PluginFactory
) -> Callable[..., contextlib.AbstractAsyncContextManager[Host]]:
    @contextlib.asynccontextmanager
    async def running(**options: Any) -> AsyncIterator[Host]:
        host = Host(
            plugins.root,
            state_dir=tmp_path / "state",
            entry_points=False,
            init_timeout=30.0,
            cleanup_timeout=2.0,
            monitor={"interval": 3600},
            **options,
        )
        async with host:
            yield host

    return running


@contextlib.asynccontextmanager
async def served(host: Host) -> AsyncIterator[httpx.AsyncClient]:
    tokens = TokenFile(host.state_dir)
    owner, _ = tokens.ensure()
    server = HttpServer(create_app(host, tokens=tokens), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {owner}"}, timeout=60
        ) as http:
            yield http
    finally:
        await server.stop()


# --------------------------------------------------------------------------- the nodes view


async def test_a_host_without_ray_has_an_empty_nodes_view(
    make: Any, plugins: PluginFactory
) -> None:
    plugins("acme.local", PING)
    async with make(inline=["*"]) as host, served(host) as http:
        answer = await http.get("/api/v1/nodes")
        assert answer.status_code == 200
        assert answer.json() == {"cluster": None, "nodes": [], "unplaced": []}
        page = (await http.get("/")).text
        assert '<section id="nodes-pane" hidden>' in page


@pytest.mark.slow
async def test_the_nodes_view_shows_every_node_and_how_each_plugin_runs_there(
    ray_cluster: Any, make: Any, plugins: PluginFactory
) -> None:
    plugins("acme.on-b", PING, extra=on_node("node-b"))
    plugins("acme.on-a", PING, extra=on_node("node-a"))
    plugins("acme.local", PING)
    policy = ray_policy(ray_cluster, trusted=("acme.on-a",))
    async with make(policy=policy) as host, served(host) as http:
        assert {r.id: str(r.state) for r in host.plugins()} == dict.fromkeys(
            ("acme.local", "acme.on-a", "acme.on-b"), "active"
        )
        view = (await http.get("/api/v1/nodes")).json()
        cluster = view["cluster"]
        assert cluster["address"] == ray_cluster.address
        assert (cluster["connected"], cluster["reachable"], cluster["error"]) == (True, True, None)
        by_name = {ray_cluster.name_of(n["node"]): n for n in view["nodes"]}
        assert set(by_name) == {"node-head", "node-a", "node-b"}
        assert all(n["alive"] for n in by_name.values())
        node_b = by_name["node-b"]
        assert node_b["resources"]["CPU"] == 1.0 and node_b["resources"]["node-b"] == 100.0
        assert node_b["labels"]["plugbay-node"] == "node-b"
        assert node_b["address"]
        placed_b = node_b["plugins"]
        assert [p["plugin"] for p in placed_b] == ["acme.on-b"]
        assert placed_b[0]["mode"] == "agent" and placed_b[0]["sandboxed"] is True
        assert placed_b[0]["how"] == "sandboxed worker of the node's agent"
        assert placed_b[0]["serving"] is True
        assert placed_b[0]["pid"] == host.plugin("acme.on-b").handle.pid  # type: ignore[union-attr]
        placed_a = by_name["node-a"]["plugins"]
        assert [(p["plugin"], p["mode"], p["sandboxed"]) for p in placed_a] == [
            ("acme.on-a", "actor", False)
        ]
        assert by_name["node-head"]["plugins"] == []  # the local plugin is on no Ray node
        assert view["unplaced"] == []
        # the dashboard's table says where each runs, before any script runs
        page = (await http.get("/")).text
        assert '<section id="nodes-pane" >' in page
        handle = host.plugin("acme.on-b").handle
        assert isinstance(handle, RayHandle)
        assert f'<td class="isolation">ray · agent · {handle.node[:8]}</td>' in page
        assert '<td class="isolation">process</td>' in page
        # a plugin that stops is on no node any more, and is listed apart with why
        await host.disable("acme.on-b", reason="maintenance")
        view = (await http.get("/api/v1/nodes")).json()
        assert all(p["plugin"] != "acme.on-b" for n in view["nodes"] for p in n["plugins"])
        assert [(u["plugin"], u["state"]) for u in view["unplaced"]] == [
            ("acme.on-b", "disabled")
        ]
