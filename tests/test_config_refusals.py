"""One attempt to set config is refused once, naming every key it got wrong, each in its
own words, and pointing the asker to where the keys are shown in the asker's terms; the
published schema accepts what the host accepts; a schema's limit that nothing would check
is refused when the manifest is read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import jsonschema
import pytest

from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory
from tests.test_dashboard_browser import ARGS, CHROMIUM

SCHEMA = """
[config.nick]
type = "string"
default = "bob"
pattern = "^[a-z]+$"
pattern-hint = "lower-case letters only"
[config.code]
type = "string"
default = "ab"
pattern = "[a-z]+"
[config.count]
type = "integer"
default = 2
minimum = 1
maximum = 10
"""

NICK = "config key 'nick' is invalid: \"1bad\" is not lower-case letters only"
COUNT = "config key 'count' is invalid: 0 is not a whole number from 1 to 10"
COLOUR = "unknown config key 'colour': acme.knobs declares no such key"
CLI_POINTER = "'plugbay config acme.knobs' shows its keys, types and limits"
API_POINTER = "GET /api/v1/plugins/acme.knobs/config shows the schema"


def _refusal(*pairs: str, cwd: Path) -> dict[str, object]:
    refused = plugbay("config", "acme.knobs", *pairs, "--json", cwd=cwd)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    error: dict[str, object] = json.loads(refused.stdout)["error"]
    return error


def _every_key_said(error: dict[str, object]) -> None:
    problems = error["details"]["problems"]  # type: ignore[index]
    assert [p["key"] for p in problems] == ["nick", "count", "colour"]
    assert [p["message"] for p in problems] == [NICK, COUNT, COLOUR]
    assert error["message"] == f"{NICK}; {COUNT}; {COLOUR}"
    assert error["where"] == "run-time config: nick, count, colour"
    hint = str(error["hint"])
    for said in ("set 'nick' to a value it allows, such as \"bob\"", "set 'count' to a value",
                 "remove 'colour'"):  # fmt: skip
        assert said in hint, hint


def test_every_bad_key_of_one_attempt_is_refused_at_once_in_the_askers_words(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.knobs", extra=SCHEMA)
    bad = ("nick=1bad", "count=0", "colour=red")
    # a host started for the command: every key said, and the CLI's own pointer
    alone = tmp_path / "alone"
    alone.mkdir()
    error = _refusal(*bad, "--plugins", str(plugins.root), cwd=alone)
    _every_key_said(error)
    assert str(error["hint"]).endswith(CLI_POINTER), error["hint"]
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)) as host:
        # through a running host's API, the CLI still points to the CLI, not the API
        error = _refusal(*bad, cwd=tmp_path)
        _every_key_said(error)
        assert str(error["hint"]).endswith(CLI_POINTER) and "GET " not in str(error["hint"])
        url = f"{host.url}/api/v1/plugins/acme.knobs/config"
        sent = {"nick": "1bad", "count": 0, "colour": "red"}
        put = httpx.put(url, json={"values": sent}, headers=host.auth, timeout=30)
        assert put.status_code == 422, put.text
        _every_key_said(put.json()["error"])
        assert put.json()["error"]["hint"].endswith(API_POINTER)
        # a value of the wrong JSON type beside a refused pattern: both in one refusal
        sent = {"count": "5", "code": "12x"}
        put = httpx.put(url, json={"values": sent}, headers=host.auth, timeout=30)
        problems = put.json()["error"]["details"]["problems"]
        assert [p["key"] for p in problems] == ["count", "code"], put.text
        assert httpx.get(url, headers=host.auth, timeout=30).json()["runtime"] == {}


def test_the_published_schema_takes_exactly_what_the_host_takes(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.knobs", extra=SCHEMA)
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)) as host:
        doc = httpx.get(f"{host.url}/openapi.json", headers=host.auth, timeout=30).json()
        put = doc["paths"]["/api/v1/plugins/acme.knobs/config"]["put"]
        schema = put["requestBody"]["content"]["application/json"]["schema"]
        code = schema["properties"]["values"]["properties"]["code"]
        assert code["pattern"] == "^(?:[a-z]+)$(?!\\n)"  # Python's '$' also takes "ab\n"
        url = f"{host.url}/api/v1/plugins/acme.knobs/config"
        # the config route shows each key's pattern as exported, and as written
        shown = httpx.get(url, headers=host.auth, timeout=30).json()["schema"]
        assert shown["code"]["pattern"] == code["pattern"], shown
        assert shown["code"]["pattern-written"] == "[a-z]+"
        assert shown["nick"]["pattern-written"] == "^[a-z]+$"
        table = " ".join(plugbay("config", "acme.knobs", cwd=tmp_path).stdout.split())
        assert "pattern [a-z]+" in table and "(?!" not in table, table  # people read it as written
        nick = jsonschema.Draft202012Validator(
            {"type": "string", "pattern": shown["nick"]["pattern"]}
        )
        for value in ("12x", "ab", "x12", "abc", "ab\n"):
            body = {"values": {"code": value}}
            published = jsonschema.Draft202012Validator(schema).is_valid(body)
            assert published == (re.search(code["pattern"], value) is not None)
            put_status = httpx.put(url, json=body, headers=host.auth, timeout=30).status_code
            assert (put_status == 200) == published, (value, put_status)
            nick_status = httpx.put(
                url, json={"values": {"nick": value}}, headers=host.auth, timeout=30
            ).status_code
            assert (nick_status == 200) == nick.is_valid(value), (value, nick_status)


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        (
            'type = "array"\nitems = "integer"\nminimum = 1\n',
            "config key 'sizes' has an invalid schema: minimum on an array is not checked",
        ),
        (
            'type = "array"\nmaximum = 5\npattern = "[a-z]+"\n',
            "maximum, pattern on an array is not checked (it applies to numbers and strings, "
            "not to an array's items): remove it",
        ),
        (
            'type = "string"\npattern-hint = "four capital letters"\n',
            "pattern-hint says what a pattern allows, and the key has no pattern: "
            'add pattern = "…"',
        ),
    ],
)
def test_validate_refuses_a_limit_nothing_would_check(
    plugins: PluginFactory, tmp_path: Path, entry: str, said: str
) -> None:
    plugin = plugins("acme.limits", extra=f"[config.sizes]\n{entry}")
    checked = plugbay("validate", str(plugin), cwd=tmp_path)
    text = " ".join((checked.stdout + checked.stderr).split())
    assert checked.returncode == 1, text
    assert said in text, text
    started = plugbay(
        "run", "--once", "--no-http", "--no-metrics", "--plugins", str(plugins.root),
        cwd=tmp_path,
    )  # fmt: skip
    assert said in " ".join((started.stdout + started.stderr).split())


@pytest.mark.slow
def test_the_dashboard_marks_every_field_one_attempt_got_wrong(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: 'make browser' installs it (make test does)")
    from playwright.sync_api import expect, sync_playwright

    plugins("acme.knobs", extra=SCHEMA)
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)) as host, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{host.url}/?token={host.token}")
            page.locator('tr[data-plugin="acme.knobs"] button.select').click()
            expect(page.locator("#cfg-nick")).to_have_value("bob")
            page.fill("#cfg-nick", "1bad")
            page.fill("#cfg-count", "0")
            page.click("#config-form button[type=submit]")
            expect(page.locator("#config-result")).to_contain_text(NICK)
            expect(page.locator("#config-result")).to_contain_text(COUNT)
            for field in ("#cfg-nick", "#cfg-count"):
                expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
            expect(page.locator("#cfg-code")).not_to_have_attribute("aria-invalid", "true")
        finally:
            browser.close()
