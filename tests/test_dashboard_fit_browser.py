"""The dashboard for an operator, in a real browser (Debian's chromium, headless):
it fits 1280×800 and 1920×1080 without horizontal overflow, every control is reached
with the keyboard alone, the config form changes a running plugin (and names a bad
key), the permission diff of an upgrade is answered with approve/deny, and a read-only
token is offered no control it may not use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.state import StateStore
from plugbay.web.scopes import create_token
from tests._running import plugbay_run
from tests.conftest import PluginFactory
from tests.test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM

GREETER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    def on_config_change(self, old, new):
        pass

    @command
    def greet(self, name: str) -> str:
        return f"{self.context.config['greeting']}, {name}"
"""

SCHEMA = """
[config.greeting]
type = "string"
default = "Hello"
max-length = 12
description = "What the greeter says first"
[config.mode]
type = "string"
enum = ["plain", "loud"]
default = "plain"
[config.polite]
type = "boolean"
default = true
"""

SIZES = [(1280, 800), (1920, 1080)]


def _plugins(plugins: PluginFactory) -> None:
    plugins("acme.greeter", GREETER, extra=SCHEMA)
    plugins("acme.netwatch", extra='[permissions]\nnetwork = ["127.0.0.1:6667"]\n')
    plugins("acme.a-plugin-with-a-rather-long-identifier-to-test-widths")
    for i in range(12):
        plugins(f"bulk.p{i:02d}", extra='[dependencies]\n"acme.greeter" = "^1"\n' if i else "")


def _overflow(page: Any) -> dict[str, int]:
    """How far the page, and each pane's content, is wider than what shows it."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => {
          const out = {page: document.documentElement.scrollWidth - window.innerWidth};
          for (const el of document.querySelectorAll('section, .table-wrap, #charts, form')) {
            if (el.offsetParent === null) continue;
            out[el.id || el.className] = el.scrollWidth - el.clientWidth;
          }
          return out;
        }"""
    )


def _unreached_by_tab(page: Any) -> list[str]:
    """Every visible, enabled control that Tab never reaches from the top of the page."""
    page.evaluate(
        """() => {
          let n = 0;
          for (const el of document.querySelectorAll('button, input, select, textarea, a[href]')) {
            el.dataset.kb = String(n++);
          }
          window.__reached = new Set();
          document.addEventListener('focusin', (e) => {
            if (e.target.dataset && e.target.dataset.kb) window.__reached.add(e.target.dataset.kb);
          });
          document.activeElement && document.activeElement.blur();
        }"""
    )
    total = page.evaluate("document.querySelectorAll('[data-kb]').length")
    for _ in range(total + 10):
        page.keyboard.press("Tab")
    # the walk reached the operations of every row, the filter, the forms: not a vacuous pass
    # (15 rows, each with its name, reload and disable; rollback is off with no earlier version)
    assert page.evaluate("window.__reached.size") > 45
    return page.evaluate(  # type: ignore[no-any-return]
        """() => [...document.querySelectorAll('[data-kb]')]
          .filter((el) => el.offsetParent !== null && !el.disabled
                          && getComputedStyle(el).visibility !== 'hidden')
          .filter((el) => !window.__reached.has(el.dataset.kb))
          .map((el) => el.outerHTML.slice(0, 80))"""
    )


@pytest.mark.slow
def test_the_dashboard_fits_the_screen_and_serves_the_operator(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: 'make browser' installs it (make test does)")
    from playwright.sync_api import expect, sync_playwright

    _plugins(plugins)
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)) as host, sync_playwright() as pw:
        with StateStore.open(host.state) as db:
            reader = create_token(db, ["read"], expires=None, note="wall")[1]
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            for width, height in SIZES:
                page = browser.new_page(viewport={"width": width, "height": height})
                problems: list[str] = []
                page.on("pageerror", lambda exc, p=problems: p.append(str(exc)))
                page.goto(f"{host.url}/?token={host.token}")
                expect(page.locator("#plugins tbody tr")).to_have_count(15)
                page.locator('tr[data-plugin="acme.greeter"] button.select').click()
                expect(page.locator("#config-form")).to_be_visible()
                over = _overflow(page)
                assert all(v <= 0 for v in over.values()), (width, over)
                assert _unreached_by_tab(page) == [], (width, height)
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}x{height}.png"))
                assert problems == [], problems
                page.close()

            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{host.url}/?token={host.token}")
            # the config form: a bad value is refused naming its key, a good one applies
            page.locator('tr[data-plugin="acme.greeter"] button.select').click()
            expect(page.locator("#cfg-greeting")).to_have_value("Hello")
            expect(page.locator("#cfg-mode")).to_have_value("plain")
            page.fill("#cfg-greeting", "Good morning to you")
            page.click("#config-form button[type=submit]")
            expect(page.locator("#config-result")).to_contain_text("config key 'greeting'")
            expect(page.locator("#cfg-greeting")).to_have_attribute("aria-invalid", "true")
            page.fill("#cfg-greeting", "Hi")
            page.select_option("#cfg-mode", "loud")
            page.click("#config-form button[type=submit]")
            expect(page.locator("#config-result")).to_have_text("applied")
            with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as http:
                r = http.post("/api/v1/plugins/acme.greeter/commands/greet", json={"name": "Ed"})
                assert r.json() == {"result": "Hi, Ed"}
                runtime = http.get("/api/v1/plugins/acme.greeter/config").json()["runtime"]
                assert runtime == {"greeting": "Hi", "mode": "loud"}

                # the permission diff: deny is recorded, approve grants at once
                page.locator('tr[data-plugin="acme.netwatch"] button.select').click()
                pending = page.locator("#pending li")
                expect(pending).to_have_count(1)
                expect(pending).to_contain_text("network:127.0.0.1:6667")
                pending.locator('button[data-answer="deny"]').click()
                expect(pending).to_contain_text("denied: it runs without it")
                history = http.get("/api/v1/plugins/acme.netwatch/history").json()
                assert ("deny", "network:127.0.0.1:6667") in [
                    (e["action"], e["reason"]) for e in history
                ]
                pending.locator('button[data-answer="grants"]').click()
                expect(page.locator("#permission-diff")).to_be_hidden()
                info = http.get("/api/v1/plugins/acme.netwatch").json()
                assert "network:127.0.0.1:6667" in info["permissions"]["granted"]
            page.close()

            # a read-only token: no operations, no config, no call form
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{host.url}/?token={reader}")
            expect(page.locator("#plugins tbody tr")).to_have_count(15)
            expect(page.locator("td.actions button:visible")).to_have_count(0)
            page.locator('tr[data-plugin="acme.greeter"] button.select').click()
            expect(page.locator("#detail-info")).to_contain_text("utility")
            expect(page.locator("#config-form")).to_be_hidden()
            expect(page.locator("#call-form")).to_be_hidden()
            page.close()
        finally:
            browser.close()
