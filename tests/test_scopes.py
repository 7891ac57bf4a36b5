"""Scoped API tokens: every route of the OpenAPI document, asked with each scope, is
allowed or refused as the scope says; revoked and expired tokens stop at once; only a
digest is kept; the dashboard offers only what the token may do."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.api.errors import PlugbayError
from plugbay.state import StateStore
from plugbay.web.scopes import create_token, parse_expiry, parse_scope
from tests._cli import plugbay
from tests._served import api_served
from tests.conftest import PluginFactory

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b
"""


class Served:
    def __init__(self, host: Any, url: str, owner: str) -> None:
        self.host, self.url, self.owner = host, url, owner

    def token(self, *scopes: str, expires: float | None = None) -> str:
        assert self.host.state is not None
        return create_token(self.host.state, scopes, expires=expires, note="test")[1]

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )


@pytest.fixture
async def served(make_host: Callable[..., Any], plugins: PluginFactory) -> AsyncIterator[Served]:
    plugins("acme.calc", CALC)
    plugins("acme.other", CALC)
    host = make_host()
    async with host, api_served(host, max_body=4096) as (url, owner):
        yield Served(host, url, owner)


def _operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (method, concrete path) of the document, each plugin route for both plugins."""
    out = []
    for template, operations in document["paths"].items():
        for method in operations:
            if method.upper() not in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                continue
            for plugin in ("acme.calc", "acme.other"):
                path = template.replace("{plugin_id}", plugin).replace("{command}", "add")
                path = path.replace("{name}", "dashboard.js")
                assert "{" not in path, f"a route with a parameter the walk does not fill: {path}"
                out.append((method.upper(), path))
    return sorted(set(out))


def _expected(scope: str, method: str, path: str) -> bool:
    """The rule, written out independently of the host's code."""
    if scope == "admin":
        return True
    if method == "GET":  # a plugin's recorded calls are the users' data: for its callers
        recorded = re.fullmatch(r"/api/v1/plugins/(.+)/recording", path)
        return recorded is None or scope == f"call:{recorded.group(1)}"
    return scope == "call:acme.calc" and bool(
        re.fullmatch(r"/api/v1/plugins/acme\.calc/commands/add(/batch)?", path)
    )


async def walk_every_route(served: Any) -> None:
    """Each scope on every route of the OpenAPI document, against :func:`_expected`:
    ``served`` has ``owner``, ``token(scope)`` and ``client(token)`` (a host served at
    the root here, or mounted under a prefix: ``tests/test_scopes_mounted.py``)."""
    async with served.client(served.owner) as owner:
        operations = _operations((await owner.get("/openapi.json")).json())
    assert len(operations) > 30
    # the scopes that may change nothing first, so the admin's changes come last
    for scope in ("read", "call:acme.calc", "admin"):
        async with served.client(served.token(scope)) as http:
            for method, path in operations:
                params = {"max_events": 1} if path.endswith("/stream") else None
                body: dict[str, Any] | None = None
                if path.endswith("/commands/add"):
                    body = {"a": 1}
                elif path.endswith("/commands/add/batch"):
                    body = {"params": [{"a": 1}]}
                if path.endswith("/events"):  # a live stream: its status line says it all
                    async with http.stream(method, path) as live:
                        assert live.status_code == 200, (scope, method, path)
                    continue
                r = await http.request(method, path, json=body, params=params)
                assert r.status_code != 401, (scope, method, path, r.text)
                allowed = _expected(scope, method, path)
                assert (r.status_code != 403) == allowed, (scope, method, path, r.status_code)
                if not allowed:
                    error = r.json()["error"]
                    assert error["code"] == "scope_denied" and scope in error["message"]


async def test_every_route_of_the_document_checks_the_scope(served: Served) -> None:
    await walk_every_route(served)


async def test_a_call_scope_calls_its_plugin_only_and_reads_everything(served: Served) -> None:
    async with served.client(served.token("call:acme.calc")) as http:
        r = await http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 2, "b": 3})
        assert r.json() == {"result": 5}
        refused = await http.post("/api/v1/plugins/acme.other/commands/add", json={"a": 2})
        assert refused.status_code == 403
        batch = {"params": [{"a": 2}, {"a": 3, "b": 4}]}
        r = await http.post("/api/v1/plugins/acme.calc/commands/add/batch", json=batch)
        assert r.json() == {"results": [{"result": 3}, {"result": 7}]}
        r = await http.post("/api/v1/plugins/acme.other/commands/add/batch", json=batch)
        assert r.status_code == 403
        assert "needs the scope call:acme.other" in refused.json()["error"]["message"]
        assert (await http.post("/api/v1/plugins/acme.calc/reload")).status_code == 403
        assert (await http.get("/api/v1/plugins")).status_code == 200
        assert (await http.get("/api/v1/access")).json()["scopes"] == ["call:acme.calc"]
    # the refusal reached nothing: the plugin still serves, and the log has the refusal
    assert await served.host.call("acme.other", "add", a=1) == 2
    assert str(served.host.plugin("acme.calc").state) == "active"


async def test_revoked_and_expired_tokens_stop_at_their_next_request(served: Served) -> None:
    token = served.token("read")
    soon = served.token("read", expires=time.time() + 3600)
    async with served.client(token) as http, served.client(soon) as brief:
        assert (await http.get("/api/v1/plugins")).status_code == 200
        assert (await brief.get("/api/v1/plugins")).status_code == 200
        token_id = token.split("_")[1]
        assert served.host.state.revoke_api_token(token_id)
        r = await http.get("/api/v1/plugins")
        assert r.status_code == 401 and f"{token_id} was revoked" in r.json()["error"]["message"]
        # its hour has passed (written as another process would: the state file itself)
        db = sqlite3.connect(served.host.state_dir / "state.db")
        with db:
            db.execute("UPDATE api_tokens SET expires=? WHERE id=?", (time.time() - 1, soon[4:12]))
        db.close()
        r = await brief.get("/api/v1/plugins")
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    async with served.client("pbt_0000_not-a-token") as http:
        r = await http.get("/api/v1/plugins")
        assert r.status_code == 401 and "not one this host made" in r.json()["error"]["message"]


async def test_a_refused_scoped_token_is_pointed_to_a_new_scoped_one_not_the_host_s(
    served: Served,
) -> None:
    # a wall screen's expired read token was told to fetch the host's own token, which
    # may do everything: the way out of a scoped token is another scoped one
    soon = served.token("read", expires=time.time() + 3600)
    db = sqlite3.connect(served.host.state_dir / "state.db")
    with db:
        db.execute("UPDATE api_tokens SET expires=? WHERE id=?", (time.time() - 1, soon[4:12]))
    db.close()
    async with served.client(soon) as http:
        r = await http.get("/api/v1/plugins")
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    assert "'plugbay token create --scope" in r.json()["error"]["hint"]
    assert "'plugbay token' on the host's machine shows" not in r.json()["error"]["hint"]
    async with served.client("not-a-token") as http:  # the host's own, mistyped
        r = await http.get("/api/v1/plugins")
    own = "'plugbay token' on the host's machine shows the current one"
    assert r.json()["error"]["hint"] == own


async def test_token_list_says_when_each_token_was_last_used(served: Served) -> None:
    # last_used was never written: an operator could not tell a token in use from one
    # forgotten, before revoking it
    used, idle = served.token("read"), served.token("read")
    before = time.time()
    async with served.client(used) as http:
        for _ in range(20):  # kept to the minute: one write, not one per request
            assert (await http.get("/api/v1/plugins")).status_code == 200
    rows = {r["id"]: r for r in served.host.state.api_tokens()}
    assert rows[idle.split("_")[1]]["last_used"] is None
    assert before <= rows[used.split("_")[1]]["last_used"] <= time.time()
    # written at most once a minute a token: a request within it writes nothing
    token_id = used.split("_")[1]
    db = sqlite3.connect(served.host.state_dir / "state.db")
    with db:
        db.execute("UPDATE api_tokens SET last_used=1 WHERE id=?", (token_id,))
    db.close()
    async with served.client(used) as http:
        assert (await http.get("/api/v1/plugins")).status_code == 200
    assert {r["id"]: r for r in served.host.state.api_tokens()}[token_id]["last_used"] == 1
    state_dir = served.host.state_dir
    shown = plugbay("token", "list", "--state", str(state_dir), cwd=state_dir.parent).stdout
    assert "last used" in shown
    lines = {x.split()[0]: x for x in shown.splitlines() if x.strip()}
    assert lines[idle.split("_")[1]].count("never") == 2  # expires, last used
    assert lines[used.split("_")[1]].count("never") == 1


async def test_only_a_digest_of_the_token_is_kept(served: Served) -> None:
    token = served.token("admin")
    raw = (served.host.state_dir / "state.db").read_bytes()
    for name in ("state.db-wal",):
        wal = served.host.state_dir / name
        if wal.exists():
            raw += wal.read_bytes()
    secret = token.split("_", 2)[2]
    assert secret.encode() not in raw
    db = sqlite3.connect(served.host.state_dir / "state.db")
    [(digest,)] = db.execute("SELECT digest FROM api_tokens").fetchall()
    db.close()
    assert len(digest) == 64 and secret not in digest


async def test_the_dashboard_offers_only_what_the_token_may_do(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        reader = served.token("read")
        r = await http.get("/", params={"token": reader}, follow_redirects=True)
        assert r.status_code == 200
        assert 'data-scopes="read"' in r.text
        # its cookie is a read token: a change from the page is refused
        refused = await http.post(
            "/api/v1/plugins/acme.calc/reload", headers={"Origin": served.url}
        )
        assert refused.status_code == 403
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        r = await http.get("/", params={"token": served.owner}, follow_redirects=True)
        assert 'data-scopes="admin"' in r.text


def test_scopes_and_expiries_are_checked_before_a_token_is_made(tmp_path: Path) -> None:
    for bad in ("write", "call:", "call:Bad Id", ""):
        with pytest.raises(PlugbayError, match="is not a token scope"):
            parse_scope(bad)
    now = 1_000_000.0
    assert parse_expiry("30d", now=now) == now + 30 * 86400
    assert parse_expiry("never") is None
    with pytest.raises(PlugbayError, match="is in the past"):
        parse_expiry("2001-01-01")
    with pytest.raises(PlugbayError, match="is not an expiry"):
        parse_expiry("soon")
    with StateStore.open(tmp_path) as db, pytest.raises(PlugbayError, match="needs a scope"):
        create_token(db, [], expires=None, note=None)


def test_token_commands_create_list_and_revoke(tmp_path: Path) -> None:
    made = plugbay("token", "create", "--scope", "call:acme.calc", "--expires", "2h",
                   "--note", "ci", "--json", cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    import json

    token = json.loads(made.stdout)
    assert token["token"].startswith("pbt_")
    listed = json.loads(plugbay("token", "list", "--json", cwd=tmp_path).stdout)
    assert [(t["id"], t["scopes"], t["status"]) for t in listed] == [
        (token["id"], ["call:acme.calc"], "active")
    ]
    assert "digest" not in listed[0]
    assert plugbay("token", "revoke", token["id"], cwd=tmp_path).returncode == 0
    again = plugbay("token", "revoke", token["id"], cwd=tmp_path)
    assert again.returncode == 1 and "no valid token" in again.stderr
    listed = json.loads(plugbay("token", "list", "--json", cwd=tmp_path).stdout)
    assert listed[0]["status"] == "revoked"
    bad = plugbay("token", "create", "--scope", "root", cwd=tmp_path)
    assert bad.returncode == 2 and "is not a token scope" in " ".join(bad.stderr.split())


def test_a_call_scope_for_no_plugin_on_disk_is_warned_about(tmp_path: Path) -> None:
    """A typo in call:ID made a token that could call nothing, without a word."""
    PluginFactory(tmp_path / "plugins")("extension.processor", type="extension")
    typo = plugbay("token", "create", "--scope", "call:extension.procesor", "--json",
                   cwd=tmp_path)  # fmt: skip
    assert typo.returncode == 0, typo.stderr  # still made: the plugin may come later
    warning = " ".join(typo.stderr.split())
    assert "no plugin 'extension.procesor' is on disk" in warning
    assert "did you mean 'extension.processor'?" in warning
    import json

    assert json.loads(typo.stdout)["scopes"] == ["call:extension.procesor"]  # stdout stays JSON
    right = plugbay("token", "create", "--scope", "call:extension.processor", "-s", "read",
                    cwd=tmp_path)  # fmt: skip
    assert right.returncode == 0 and "warning" not in right.stderr, right.stderr


def test_a_token_is_revoked_by_the_token_itself(tmp_path: Path) -> None:
    import json

    made = json.loads(plugbay("token", "create", "-s", "read", "--json", cwd=tmp_path).stdout)
    other = json.loads(plugbay("token", "create", "-s", "read", "--json", cwd=tmp_path).stdout)
    revoked = plugbay("token", "revoke", made["token"], "--json", cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["id"] == made["id"]
    assert made["token"] not in revoked.stdout + revoked.stderr  # the secret is not echoed
    status = {t["id"]: t["status"] for t in
              json.loads(plugbay("token", "list", "--json", cwd=tmp_path).stdout)}  # fmt: skip
    assert status == {made["id"]: "revoked", other["id"]: "active"}
    unknown = plugbay("token", "revoke", "pbt_0000_notatoken", cwd=tmp_path)
    assert unknown.returncode == 1 and "there is no token given" in unknown.stderr
    assert "notatoken" not in unknown.stderr
