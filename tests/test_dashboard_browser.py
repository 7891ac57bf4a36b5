"""The dashboard in a real browser: Debian's chromium, driven headless by playwright.

A real ``plugbay run`` with 100 plugins; the test signs in with the link
``plugbay run`` prints, checks the table, the dependency graph and the live
charts (with the numbers of calls it makes meanwhile), calls a command from
the form, reloads a plugin whose files changed and sees the new version, and
saves a screenshot to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from tests._running import plugbay_run
from tests.conftest import BUNDLED, REPO, PluginFactory

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
# Debian's chromium as root in a container: these keep it from reaching out or needing a GPU
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        \"\"\"Add two integers.\"\"\"
        return a + b
"""


def _plugins(plugins: PluginFactory) -> None:
    plugins("acme.calc", CALC)
    plugins("acme.user", extra='[dependencies]\n"acme.calc" = "^1"\n')
    shutil.copytree(BUNDLED / "core" / "system", plugins.root / "system")
    plugins("acme.broken", "raise RuntimeError('boom at import')\n")
    for i in range(96):  # 100 in all: some depend on others, so the graph has layers
        dep = f'[dependencies]\n"bulk.p{i // 10:02d}" = "*"\n' if i >= 10 else ""
        plugins(f"bulk.p{i:02d}", extra=dep)


class Caller(threading.Thread):
    """Calls acme.calc steadily (bounded), so the charts have real traffic to show."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.stop = threading.Event()
        self.calls = 0
        #: calls that did not answer 200, as the test's failure message shows them
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=10) as http:
            while not self.stop.is_set() and self.calls < 20_000:
                try:
                    r = http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": self.calls})
                except httpx.HTTPError as exc:
                    self.failures.append(f"call {self.calls}: {exc!r}")
                else:
                    if r.status_code != 200:
                        self.failures.append(f"call {self.calls}: {r.status_code} {r.text[:200]}")
                self.calls += 1
                self.stop.wait(0.01)

    def __str__(self) -> str:
        return f"{self.calls} calls made, {len(self.failures)} failed: {self.failures[:5]}"


@pytest.mark.slow
def test_dashboard_shows_live_figures_and_reloads_a_plugin(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: 'make browser' installs it (make test does)")
    from playwright.sync_api import expect, sync_playwright

    _plugins(plugins)
    with plugbay_run(tmp_path) as host, sync_playwright() as pw:
        caller = Caller(host.url, host.auth)
        caller.start()
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(f"{host.url}/?token={host.token}")
            assert page.url == f"{host.url}/"  # the token left the address bar for a cookie

            # the table: every plugin, state colours and versions
            rows = page.locator("#plugins tbody tr")
            expect(rows).to_have_count(100)
            calc = page.locator('tr[data-plugin="acme.calc"]')
            expect(calc.locator(".version")).to_have_text("1.0.0")
            expect(calc.locator(".badge")).to_have_text("active")
            colour = calc.locator(".badge").evaluate("e => getComputedStyle(e).backgroundColor")
            assert colour == "rgb(46, 139, 87)"  # active is green
            expect(page.locator("#summary")).to_have_text("100 plugins, 99 active, 1 failed")
            broken = page.locator('tr[data-plugin="acme.broken"] .badge')
            expect(broken).to_have_text("failed")
            assert broken.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(192, 57, 43)"
            expect(broken).to_have_attribute("title", re.compile("boom at import"))
            expect(page.locator("#alerts")).to_contain_text("acme.broken is failed")
            # the dependency graph, drawn as SVG: a node per plugin, an edge per dependency
            expect(page.locator("#graph svg g.node")).to_have_count(100)
            expect(page.locator('#graph svg g.node[data-state="failed"]')).to_have_count(1)
            expect(
                page.locator('#graph svg path[data-from="acme.user"][data-to="acme.calc"]')
            ).to_have_count(1)
            # filtering keeps 100 rows usable
            page.fill("#filter", "acme.")
            expect(page.locator("#plugins tbody tr:visible")).to_have_count(3)
            page.fill("#filter", "")

            # the charts of acme.calc, live, with the calls the test makes
            calc.locator("button.select").click()
            expect(page.locator("#detail-title")).to_have_text("acme.calc")
            expect(page.locator("#detail-info")).to_contain_text("needed by: acme.user")
            try:
                page.wait_for_function(
                    "Number(document.querySelector('#last-rate').dataset.value) > 1",
                    timeout=60_000,  # a deadline, not a goal: CI's 2 cores also run chromium
                )
            except Exception as exc:  # say what the traffic and the host did meanwhile
                shown = page.locator("#last-rate").get_attribute("data-value")
                raise AssertionError(
                    f"the rate chart never passed 1 call/s (shows {shown}); caller: {caller};"
                    f" host printed: {''.join(host.lines[-20:])}"
                ) from exc
            rate = float(page.locator("#last-rate").get_attribute("data-value") or 0)
            p99 = float(page.locator("#last-latency").get_attribute("data-value") or 0)
            memory = float(page.locator("#last-memory").get_attribute("data-value") or 0)
            assert rate > 1 and p99 > 0 and memory > 10
            assert float(calc.locator(".rate").inner_text()) > 0  # the table is live too
            for chart in ("rate", "errors", "latency", "memory"):
                inked = page.evaluate(
                    """id => { const c = document.getElementById(id);
                       const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                       return n; }""",
                    f"chart-{chart}",
                )
                assert inked > 200, f"chart {chart} drew {inked} pixels"

            # the command form
            page.select_option("#call-command", "add")
            page.fill("#call-params", '{"a": 40, "b": 2}')
            page.click("#call-form button[type=submit]")
            expect(page.locator("#call-result")).to_have_text("42")
            page.fill("#call-params", '{"a": "forty"}')
            page.click("#call-form button[type=submit]")
            expect(page.locator("#call-result")).to_contain_text(
                "command 'add' parameter 'a' expects int, got str"
            )
            # logs from system.logging
            expect(page.locator("#logs")).to_contain_text("INFO")

            # reload: new files, the button, and the new version shows
            manifest = next(plugins.root.glob("acme.calc-*")) / "plugin.toml"
            manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.1.0"'))
            calc.locator('button[data-op="reload"]').click()
            expect(page.locator("#op-result")).to_contain_text("acme.calc: reload done — 1.1.0")
            expect(calc.locator(".version")).to_have_text("1.1.0")
            expect(page.locator("#detail-info")).to_contain_text("1.1.0 · utility · active")
            expect(
                page.locator('#graph svg g.node[data-plugin="acme.calc"] title')
            ).to_contain_text("1.1.0")
            # and back: rollback serves the version before
            calc.locator('button[data-op="rollback"]').click()
            expect(page.locator("#op-result")).to_contain_text("acme.calc: rollback done — 1.0.0")
            expect(calc.locator(".version")).to_have_text("1.0.0")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert problems == [], problems
            assert not caller.failures, caller
        finally:
            caller.stop.set()
            caller.join(timeout=10)
            browser.close()
