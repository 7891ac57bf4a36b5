"""A bisect's step that asks for a plugin which does not start says so, and why: over the
HTTP API (``PUT /api/v1/bisect/active``'s ``failed``) and in ``plugbay bisect``'s steps,
so the operator is not left with a plugin simply missing from the order."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._running import plugbay_run
from tests._served import api_served
from tests.conftest import PluginFactory

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

#: its initialize raises on every second start (the second, the fourth…)
STARTS_ONCE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context) -> None:
        starts = context.environment.data_dir / "starts"
        n = int(starts.read_text()) + 1 if starts.exists() else 1
        starts.write_text(str(n))
        if n % 2 == 0:
            raise RuntimeError(f"the wheel fell off on start {n}")

    @command
    def ping(self) -> str:
        return "pong"
"""


def _chain(plugins: PluginFactory) -> None:
    """acme.a ← acme.b (fails every second start) ← acme.c: the start order is a, b, c."""
    plugins("acme.a", PING)
    plugins("acme.b", STARTS_ONCE, extra='[dependencies]\n"acme.a" = "^1"\n')
    plugins("acme.c", PING, extra='[dependencies]\n"acme.b" = "^1"\n')


async def test_a_plugin_a_bisect_step_cannot_start_is_answered_with_why(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    _chain(plugins)
    async with make_host() as host, api_served(host) as (url, token):
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            begun = await http.post("/api/v1/bisect")
            assert begun.json()["order"] == ["acme.a", "acme.b", "acme.c"], begun.text
            first = await http.put("/api/v1/bisect/active", json={"plugins": ["acme.a"]})
            assert first.status_code == 200, first.text
            assert first.json()["order"] == ["acme.a"] and first.json()["failed"] == {}
            every = ["acme.a", "acme.b", "acme.c"]
            again = await http.put("/api/v1/bisect/active", json={"plugins": every})
            assert again.status_code == 200, again.text
            answer = again.json()
            assert answer["order"] == ["acme.a"]  # as before: the plugins active
            assert set(answer["failed"]) == {"acme.b", "acme.c"}, answer
            b = answer["failed"]["acme.b"]
            assert b["code"] == "plugin_init_failed"
            assert b["message"] == "initialize raised RuntimeError: the wheel fell off on start 2"
            assert "plugbay info acme.b --traceback" in b["hint"]
            assert "acme.b" in answer["failed"]["acme.c"]["message"], answer  # what it needs
            ping = await http.post("/api/v1/plugins/acme.a/commands/ping", json={})
            assert ping.json() == {"result": "pong"}
            ended = await http.delete("/api/v1/bisect")  # b's third start: it starts
            assert ended.json()["problems"] == [], ended.text


def test_plugbay_bisect_says_which_plugin_did_not_start_and_why(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    _chain(plugins)
    script = tmp_path / "check.py"
    script.write_text(
        "import sys\nfrom plugbay.web.client import connect\n"
        "with connect('.plugbay') as c:\n"
        "    ids = [p['id'] for p in c.plugins() if p['state'] == 'active']\n"
        "    sys.exit(1 if 'acme.b' in ids else 0)\n"
    )
    check = f"{sys.executable} check.py"
    with plugbay_run(tmp_path):
        shown = plugbay("bisect", "--check", check, cwd=tmp_path, timeout=120)
        text = " ".join(shown.stdout.split())
        assert (
            "acme.b did not start, so the check ran without it: initialize raised "
            "RuntimeError: the wheel fell off on start 2" in text
        ), shown.stdout + shown.stderr
        assert "the host is as it was before the bisect" in text, text  # b's third start
        # c is innocent: the check only passed because b was missing, so nobody is blamed
        assert "acme.c:" not in text and shown.returncode == 1, text
        assert (
            "no culprit found: the result would be uncertain, so the bisect stopped at check "
            "3: acme.b did not start" in text
        ), text
        assert "make acme.b start ('plugbay info acme.b --traceback' says why)" in text, text
        again = plugbay("bisect", "--check", check, "--json", cwd=tmp_path, timeout=120)
    answer = json.loads(again.stdout)
    assert answer["ok"] is False and answer["culprit"] is None, answer
    assert "uncertain" in answer["found"] and "acme.b did not start" in answer["found"], answer
    steps = answer["steps"]
    failed = [step["failed"] for step in steps if step["failed"]]
    assert failed and set(failed[0]["acme.b"]) == {"code", "message", "hint"}, steps
    assert failed[0]["acme.b"]["message"] == (
        "initialize raised RuntimeError: the wheel fell off on start 4"
    )
