"""``plugbay grants``: every plugin's permissions at once, one row per plugin and
permission: each grant with where it comes from, in force now and at the next start, and
what is asked for and not granted flagged. The same rows with no host (the state and
plugbay.toml read) and beside a running one (its ``GET /api/v1/permissions``, read scope)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.cli.grants import _now, grant_rows
from plugbay.runtime.host import Host
from tests._cli import PLUGBAY, cli_env, plugbay, run_cli
from tests._running import plugbay_run
from tests._served import api_served
from tests.conftest import PluginFactory
from tests.test_cli_json import documented, same_shape

ASKS = '[permissions]\nnetwork = ["127.0.0.1:8080"]\nenv = ["HOME"]\nread = ["/srv/data"]\n'
BY_HAND = "plugbay grant (no host serving its API)"
#: what a row says of where it comes from, the same whoever answers
SOURCE = ("plugin", "version", "permission", "status", "covers", "source", "where", "file",
          "by", "since", "next_start")  # fmt: skip


def listed(cwd: Path) -> dict[str, Any]:
    shown = plugbay("grants", "--json", cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    answer: dict[str, Any] = json.loads(shown.stdout)
    return answer


def said(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(row[k] for k in SOURCE) for row in answer["rows"]]


def text(cwd: Path) -> str:
    # wide enough for a source cell naming a test's temp path on one line
    shown = run_cli([*PLUGBAY, "grants"], cwd=cwd, env=cli_env({"COLUMNS": "400"}))
    assert shown.returncode == 0, shown.stderr
    return " ".join(shown.stdout.replace("│", " ").split())  # a table's cells, in order


@pytest.mark.slow
def test_every_plugin_s_grants_with_no_host_and_beside_a_running_one(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.net", extra=ASKS)
    plugins("acme.quiet")  # asks for nothing
    config = (tmp_path / "plugbay.toml").resolve()
    config.write_text('[policy.grants]\n"acme.net" = ["env:HOME"]\n')
    for permission in ("read:/srv", "subprocess"):  # no host yet: kept in the state
        assert plugbay("grant", "acme.net", permission, cwd=tmp_path).returncode == 0
    state_db = str((tmp_path / ".plugbay" / "state.db").resolve())

    offline = listed(tmp_path)
    assert offline["host"] is None and offline["asks_nothing"] == ["acme.quiet"]
    rows = {r["permission"]: r for r in offline["rows"]}
    assert [(r["permission"], r["status"]) for r in offline["rows"]] == [
        ("env:HOME", "granted"),
        ("read:/srv", "granted"),
        ("subprocess", "unasked"),
        ("network:127.0.0.1:8080", "pending"),
    ]
    assert (rows["env:HOME"]["source"], rows["env:HOME"]["file"]) == ("config", str(config))
    assert rows["read:/srv"]["covers"] == ["read:/srv/data"]
    assert (rows["read:/srv"]["source"], rows["read:/srv"]["by"]) == ("state", BY_HAND)
    assert rows["read:/srv"]["file"] == state_db and rows["read:/srv"]["since"] > 0
    assert [r["next_start"] for r in offline["rows"]] == [True, True, False, False]
    # no host: what a worker has now is not known, and the rows do not pretend
    assert {r["in_force"] for r in offline["rows"]} == {None}
    assert {r["state"] for r in offline["rows"]} == {"not running"}
    same_shape(offline, documented()["grants"], "grants")
    shown = text(tmp_path)
    assert f"env:HOME granted [policy.grants] in {config} - yes" in shown
    assert f"read:/srv (covers read:/srv/data) granted the state database, by {BY_HAND}" in shown
    assert "subprocess granted, not asked for: no effect" in shown
    assert "network:127.0.0.1:8080 PENDING: asked, not granted - - no" in shown
    assert "'plugbay grant acme.net network:127.0.0.1:8080' grants one" in shown
    assert "ask for nothing and have no grant: acme.quiet" in shown
    assert f"no host is running on {(tmp_path / '.plugbay').resolve()}" in shown

    with plugbay_run(tmp_path) as host:
        live = listed(tmp_path)
        assert live["host"] == {"pid": host.proc.pid, "api": host.url}
        assert said(live) == said(offline)  # the same rows, whoever answers
        in_force = {r["permission"]: r["in_force"] for r in live["rows"]}
        assert in_force == {
            "env:HOME": True,
            "read:/srv": True,
            "subprocess": False,
            "network:127.0.0.1:8080": False,
        }
        assert {r["state"] for r in live["rows"]} == {"active"}
        assert f"from the running host at {host.url} (pid {host.proc.pid})" in text(tmp_path)

        # the operator says no to what is pending: flagged as denied from then on
        denied = httpx.post(
            f"{host.url}/api/v1/plugins/acme.net/deny",
            json={"permission": "network:127.0.0.1:8080"}, headers=host.auth, timeout=30,
        )  # fmt: skip
        assert denied.status_code == 200, denied.text
        assert listed(tmp_path)["rows"][-1]["status"] == "denied"
        assert "network:127.0.0.1:8080 DENIED: asked, refused by the operator" in text(tmp_path)

        # the API's own listing, with a token that may only read
        made = plugbay("token", "create", "--scope", "read", "--json", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        reader = {"Authorization": f"Bearer {json.loads(made.stdout)['token']}"}
        api = httpx.get(f"{host.url}/api/v1/permissions", headers=reader, timeout=30)
        assert api.status_code == 200, api.text
        assert [p["id"] for p in api.json()] == ["acme.net", "acme.quiet"]
        assert grant_rows(api.json())[0] == listed(tmp_path)["rows"]
        detail = httpx.get(f"{host.url}/api/v1/plugins/acme.net", headers=host.auth, timeout=30)
        assert api.json()[0]["permissions"] == detail.json()["permissions"]

    # the denial is kept: with no host again, it is still flagged
    assert listed(tmp_path)["rows"][-1]["status"] == "denied"


async def test_a_grant_taken_back_while_the_worker_runs_is_in_force_until_its_next_start(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.net", extra='[permissions]\nenv = ["HOME"]\n')
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        await host.grant("acme.net", "env:HOME")  # its worker restarts with it
        assert host.state is not None
        host.state.revoke("acme.net", "env:HOME")  # by another process, with no API
        async with (
            api_served(host) as (url, token),
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http,
        ):
            answer = await http.get("/api/v1/permissions", timeout=30)
        assert answer.status_code == 200, answer.text
        rows, quiet = grant_rows(answer.json())
        assert quiet == []
        assert [(r["permission"], r["status"], r["in_force"], r["next_start"]) for r in rows] == [
            ("env:HOME", "revoked", True, False)
        ]


REACH = """
import socket

from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def reach(self, port: int) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            return conn.recv(16).decode()
"""


async def test_a_plugin_trusted_inline_is_shown_unconfined_not_pending(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        plugins(
            "acme.trusted", REACH,
            extra=f'[permissions]\nnetwork = ["127.0.0.1:{port}"]\nread = ["/srv/data"]\n'
            'env = ["HOME"]\n',
        )  # fmt: skip
        (tmp_path / "plugbay.toml").write_text('[policy]\ninline = ["acme.*"]\n')
        # no host running: the rows say what a host started now would do
        offline = listed(tmp_path)
        assert [(r["permission"], r["status"], r["in_force"]) for r in offline["rows"]] == [
            ("network:127.0.0.1:" + str(port), "unconfined", None),
            ("read:/srv/data", "unconfined", None),
            ("env:HOME", "pending", None),  # the host hands over only granted variables
        ]
        assert offline["rows"][0]["where"].startswith("no sandbox (inline)")
        same_shape(offline, documented()["grants"], "grants")
        shown = text(tmp_path)
        assert f"network:127.0.0.1:{port} UNCONFINED: no sandbox limits it" in shown
        assert "PENDING" in shown and f"network:127.0.0.1:{port} PENDING" not in shown
        assert "run with no sandbox (trusted by the host's policy): acme.trusted" in shown
        assert "take it out of [policy] inline (or trust-core)" in shown  # not read as markup

        async with Host(
            plugins.root, state_dir=tmp_path / "state", entry_points=False, inline=["acme.*"]
        ) as host:
            # and so it is: nothing granted it, and it reaches the port all the same
            served = asyncio.get_running_loop().run_in_executor(None, _greet, listener)
            assert await host.call("acme.trusted", "reach", port=port) == "hello"
            await served
            async with (
                api_served(host) as (url, token),
                httpx.AsyncClient(
                    base_url=url, headers={"Authorization": f"Bearer {token}"}
                ) as http,
            ):
                answer = await http.get("/api/v1/permissions", timeout=30)
            assert answer.status_code == 200, answer.text
            (view,) = answer.json()
            assert view["permissions"]["pending"] == ["env:HOME"]
            assert view["permissions"]["unconfined_in"] == "inline"
            rows, _ = grant_rows(answer.json())
            assert [(r["permission"], r["status"], r["in_force"]) for r in rows] == [
                ("network:127.0.0.1:" + str(port), "unconfined", True),
                ("read:/srv/data", "unconfined", True),
                ("env:HOME", "pending", False),
            ]
            assert "unconfined (inline)" in _now(rows[0])


def _greet(listener: socket.socket) -> None:
    listener.settimeout(30)
    conn, _ = listener.accept()
    with conn:
        conn.sendall(b"hello")
