"""The dashboard in a real browser (as test_dashboard_browser): a config change that only
sets a key kept aside for another installed version says so, not "applied"; and the
rollback button is offered only when there is a version to roll back to."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests._cli import plugbay
from tests._running import plugbay_run
from tests.test_dashboard_browser import ARGS, CHROMIUM
from tests.test_upgrade_choices import NEEDS_URL, _configured


@pytest.mark.slow
def test_the_dashboard_says_a_kept_key_was_not_applied_and_offers_rollback_only_with_a_target(
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: 'make browser' installs it (make test does)")
    from playwright.sync_api import expect, sync_playwright

    _configured(tmp_path / "plugins" / "svc", "1.0.0", '[config.greeting]\ntype = "string"\n')
    with plugbay_run(tmp_path) as host, sync_playwright() as pw:
        v2 = _configured(tmp_path / "v2", "2.0.0", NEEDS_URL)
        installed = plugbay("install", str(v2), cwd=tmp_path)
        assert installed.returncode == 0, installed.stderr
        with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as http:
            put = http.put(
                "/api/v1/plugins/acme.svc/config", json={"values": {"api-url": "https://a"}}
            )
            assert put.status_code == 200, put.text
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(f"{host.url}/?token={host.token}")
            row = page.locator('tr[data-plugin="acme.svc"]')
            expect(row.locator(".badge")).to_have_text("active")
            # only 1.0.0 ever served: nothing to roll back to, and the button says so
            rollback = row.locator('button[data-op="rollback"]')
            expect(rollback).to_be_disabled()
            expect(rollback).to_have_attribute("title", "nothing to roll back to: no earlier "
                                               "version of acme.svc served here and is kept")  # fmt: skip

            # the key kept for 2.0.0 is in the form, marked so; changing it applies nothing
            row.locator("button.select").click()
            field = page.locator("#cfg-api-url")
            expect(field).to_have_value("https://a")
            expect(page.locator("#config-fields")).to_contain_text(
                "kept for version 2.0.0: the serving version does not declare it"
            )
            field.fill("https://b")
            page.click("#config-form button[type=submit]")
            expect(page.locator("#config-result")).to_have_text(
                "not applied: api-url kept for version 2.0.0 (the serving version 1.0.0 does "
                "not declare it); the config it runs with is unchanged"
            )
            with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as http:
                kept = http.get("/api/v1/plugins/acme.svc/config").json()["kept"]
                assert kept["api-url"]["value"] == "https://b"  # kept all the same
                # an upgrade elsewhere (the API): the row learns it can roll back now
                up = http.post("/api/v1/plugins/acme.svc/upgrade", json={})
                assert up.status_code == 200, up.text
            expect(row.locator(".version")).to_have_text("2.0.0")
            expect(rollback).to_be_enabled()
            expect(rollback).to_have_attribute("title", "roll back to 1.0.0")
            rollback.click()
            expect(page.locator("#op-result")).to_contain_text("acme.svc: rollback done — 1.0.0")
            expect(row.locator(".version")).to_have_text("1.0.0")
            assert problems == [], problems
        finally:
            browser.close()
