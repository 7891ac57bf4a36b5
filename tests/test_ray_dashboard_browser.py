"""The dashboard's nodes pane in a real browser (Debian's chromium, headless playwright):
a real ``plugbay run`` joined to the session's Ray cluster, with one plugin placed on
node-b in a sandboxed worker of that node's agent, one trusted plugin as a bare actor
on node-a, and one in a local worker. The page must show each node, each plugin on
its node with how it runs, and where each plugin of the table runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory
from tests.test_cli_json import documented, same_shape
from tests.test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


@pytest.mark.slow
def test_the_dashboard_shows_each_ray_node_and_the_plugins_placed_there(
    ray_nodes: Any, plugins: PluginFactory, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: 'make browser' installs it (make test does)")
    from playwright.sync_api import expect, sync_playwright

    plugins("acme.on-b", PING, extra='[resources]\ncustom = { "node-b" = 1 }\n')
    plugins("acme.on-a", PING, extra='[resources]\ncustom = { "node-a" = 1 }\n')
    plugins("acme.local", PING)
    (tmp_path / "plugbay.toml").write_text(
        f'[ray]\naddress = "{ray_nodes.address}"\nplugins = ["acme.on-*"]\n'
        '[policy]\ninline = ["acme.on-a"]\n'
    )
    node_b = ray_nodes.nodes["node-b"].node_id
    node_a = ray_nodes.nodes["node-a"].node_id
    with plugbay_run(tmp_path, timeout=120) as host, sync_playwright() as pw:
        with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as http:
            states = {p["id"]: p["state"] for p in http.get("/api/v1/plugins").json()}
            assert states == dict.fromkeys(("acme.local", "acme.on-a", "acme.on-b"), "active")
            assert http.post("/api/v1/plugins/acme.on-b/commands/ping", json={}).json()[
                "result"
            ] == ("pong")
        # `plugbay nodes` asks the running host: the same view, in the documented shape
        listed = plugbay("nodes", "--json", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        view = json.loads(listed.stdout)
        same_shape(view, documented()["nodes"], "nodes")
        placed = {p["plugin"]: (n["node"], p["mode"]) for n in view["nodes"] for p in n["plugins"]}
        assert placed == {"acme.on-b": (node_b, "agent"), "acme.on-a": (node_a, "actor")}
        table = plugbay("nodes", cwd=tmp_path)
        assert table.returncode == 0, table.stderr
        assert (
            node_b[:12] in table.stdout and "sandboxed worker of the node's agent" in table.stdout
        )
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(f"{host.url}/?token={host.token}")

            pane = page.locator("#nodes-pane")
            expect(pane).to_be_visible()
            # (a node an earlier test removed is listed too, dead: the head remembers it)
            expect(page.locator("#cluster-status")).to_have_text(
                re.compile(rf"Ray at {re.escape(ray_nodes.address)}: 3 of \d+ nodes alive")
            )
            expect(page.locator('#nodes tbody tr[data-alive="true"]')).to_have_count(3)
            row_b = page.locator(f'#nodes tr[data-node="{node_b}"]')
            expect(row_b.locator(".badge")).to_have_text("alive")
            expect(row_b.locator(".resources")).to_contain_text("node-b 100")
            placed = row_b.locator('li[data-plugin="acme.on-b"]')
            expect(placed).to_have_attribute("data-mode", "agent")
            expect(placed).to_have_attribute("data-serving", "true")
            expect(placed).to_contain_text("sandboxed worker of the node's agent")
            bare = page.locator(f'#nodes tr[data-node="{node_a}"] li[data-plugin="acme.on-a"]')
            expect(bare).to_have_attribute("data-mode", "actor")
            expect(bare).to_contain_text("bare actor (no sandbox)")
            expect(page.locator('#nodes li[data-plugin="acme.local"]')).to_have_count(0)

            # the plugins table says where each runs; the detail says it in words
            table_b = page.locator('#plugins tr[data-plugin="acme.on-b"] .isolation')
            expect(table_b).to_have_text(f"ray · agent · {node_b[:8]}")
            expect(page.locator('#plugins tr[data-plugin="acme.local"] .isolation')).to_have_text(
                "process"
            )
            page.locator('#plugins tr[data-plugin="acme.on-b"] button.select').click()
            expect(page.locator("#detail-title")).to_have_text("acme.on-b")
            expect(page.locator("#detail-where")).to_contain_text(f"runs on Ray node {node_b[:12]}")
            expect(page.locator("#detail-where")).to_contain_text(
                "as a sandboxed worker of the node's agent"
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-ray-nodes.png"), full_page=True)
            assert problems == [], problems
        finally:
            browser.close()
