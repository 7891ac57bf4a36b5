"""The dashboard's pane of upgrades on trial, in a real browser (as test_dashboard_browser):
a shadow's live comparison, the same figures the API and the CLI show."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests._cli import plugbay
from tests._running import plugbay_run
from tests._trials import calc
from tests._waiting import until_sync
from tests.conftest import PluginFactory
from tests.test_dashboard_browser import ARGS, CHROMIUM


@pytest.mark.slow
def test_the_dashboard_shows_a_shadows_comparison_live(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: 'make browser' installs it (make test does)")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    calc(plugins.root / "calc", "1.0.0")
    with plugbay_run(tmp_path) as host, sync_playwright() as pw:
        assert plugbay("install", str(calc(tmp_path / "v11", "1.1.0", wrong=True)),
                       cwd=tmp_path).returncode == 0  # fmt: skip
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(f"{host.url}/?token={host.token}")
            expect(page.locator("#trials-pane")).to_be_hidden()  # nothing on trial yet
            with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as http:
                assert http.post("/api/v1/plugins/acme.calc/shadow", json={}).status_code == 200
                for a in range(20):
                    r = http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": a, "b": 1})
                    assert r.json()["result"] == a + 1  # callers see the serving version
                    # each mirrored before the next call: a shadow drops calls past 16 in
                    # flight, and in a loaded run (the candidate at 48 ms a call) it did
                    until_sync(lambda n=a + 1: mirrored(http) >= n, f"call {a} to be mirrored", 30)
                try:
                    page.wait_for_function(
                        "document.querySelector('#trials').textContent"
                        ".includes('20 call(s) mirrored')",
                        timeout=20_000,
                    )
                except PlaywrightTimeout:  # once in a loaded CI run: say what each side had
                    shown = page.locator("#trials").text_content()
                    api = http.get("/api/v1/plugins/acme.calc/shadow").json()
                    pytest.fail(f"the pane never showed 20 mirrored calls: {shown!r}; API: {api}")
                summary = http.get("/api/v1/plugins/acme.calc/shadow").json()
            pane = page.locator("#trials-pane")
            expect(pane).to_be_visible()
            expect(pane).to_contain_text("acme.calc: shadow 1.1.0 beside 1.0.0")
            expect(pane).to_contain_text(f"{summary['differences']} difference(s)")
            expect(pane).to_contain_text('{"a":3,"b":1}: new-error')
            row = pane.locator("tbody tr").first
            add = summary["commands"]["add"]
            cells = [add["calls"], add["same"], add["differ"], add["new_errors"]]
            expect(row.locator("td")).to_have_text(
                ["add", *(str(n) for n in cells), "0", re.compile(".*ms.*")]
            )
            assert problems == [], problems
        finally:
            browser.close()


def mirrored(http: httpx.Client) -> int:
    """Calls the shadow has mirrored and compared so far (the API's count)."""
    return int(http.get("/api/v1/plugins/acme.calc/shadow").json()["mirrored"])
