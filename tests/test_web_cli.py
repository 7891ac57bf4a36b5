"""The plugbay commands against a running host go through its API: one truth for all."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory


@pytest.fixture
def workdir(plugins: PluginFactory, tmp_path: Path) -> Path:
    plugins(
        "acme.calc",
        """
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            def add(self, a: int, b: int = 1) -> int:
                return a + b

            @command
            def echo(self, text: str) -> str:
                return text
        """,
    )
    plugins("acme.user", extra='[dependencies]\n"acme.calc" = "^1"\n')
    return tmp_path


def test_commands_act_on_the_running_host(workdir: Path, plugins: PluginFactory) -> None:
    with plugbay_run(workdir) as host:
        rows = {r["id"]: r for r in json.loads(plugbay("list", "--json", cwd=workdir).stdout)}
        assert rows["acme.calc"]["state"] == "active"
        assert rows["acme.calc"]["source"] == f"host pid {host.proc.pid}"
        assert "from the running host at " + host.url in plugbay("list", cwd=workdir).stdout
        # the call is counted by the running host: the CLI and the API see the same figures
        assert plugbay("call", "acme.calc", "add", "a=2", "b=3", cwd=workdir).stdout == "5\n"
        assert plugbay("call", "acme.calc", "echo", "text=007", cwd=workdir).stdout == "007\n"
        figures = httpx.get(f"{host.url}/api/v1/metrics", headers=host.auth).json()
        assert figures["acme.calc"]["calls"] == 2
        assert (
            'plugbay_calls_total{command="add",plugin="acme.calc"'
            in plugbay("metrics", cwd=workdir).stdout
        )
        bad = plugbay("call", "acme.calc", "add", "a=two", cwd=workdir)
        assert bad.returncode == 1
        assert "command 'add' parameter 'a' expects int, got str" in bad.stderr
        info = json.loads(plugbay("info", "acme.calc", "--json", cwd=workdir).stdout)
        assert info["dependents"] == ["acme.user"] and info["usage"]["rss_bytes"] > 0
        # sandboxed by default: it runs in a worker of its own, measured alone
        assert info["isolation"] == "process" and info["usage"]["pid"] != host.proc.pid
        assert info["sandbox"]["sandboxed"] is True  # what the host adds reaches the CLI
        assert "sandboxed worker" in plugbay("info", "acme.calc", cwd=workdir).stdout

        # disable stops it in the running host at once, and says what else stopped
        refused = plugbay("disable", "acme.calc", cwd=workdir)
        assert refused.returncode == 1 and "acme.user depends on it" in refused.stderr
        both = plugbay("disable", "acme.calc", "--cascade", cwd=workdir)
        assert both.stdout == "acme.calc: disabled (also stopped: acme.user)\n"
        assert plugbay("enable", "acme.calc", cwd=workdir).returncode == 0
        off = plugbay("disable", "acme.user", "--reason", "maintenance", cwd=workdir)
        assert off.returncode == 0, off.stderr
        state = httpx.get(f"{host.url}/api/v1/plugins/acme.user", headers=host.auth).json()
        assert state["state"] == "disabled" and state["reason"] == "maintenance"
        assert plugbay("enable", "acme.user", cwd=workdir).stdout == "acme.user: enabled, active\n"

        manifest = next(plugins.root.glob("acme.calc-*")) / "plugin.toml"
        manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.0.1"'))
        # one sentence, whoever reloads: the move and the state after it
        reloaded = plugbay("reload", "acme.calc", cwd=workdir).stdout
        assert reloaded == "acme.calc: reloaded 1.0.0 → 1.0.1, active\n"
        history = json.loads(plugbay("history", "acme.calc", "--json", cwd=workdir).stdout)
        actions = [e["action"] for e in history]
        assert "reload" in actions and "http" in actions  # the change, and who asked for it
        # and back, through the running host too
        back = plugbay("rollback", "acme.calc", cwd=workdir)
        assert back.returncode == 0, back.stderr
        assert back.stdout == "acme.calc: rolled back 1.0.1 → 1.0.0\n"
        state = httpx.get(f"{host.url}/api/v1/plugins/acme.calc", headers=host.auth).json()
        assert state["version"] == "1.0.0"

        token = plugbay("token", cwd=workdir).stdout.splitlines()
        assert token[0] == host.token and token[1] == f"dashboard: {host.url}/?token={host.token}"
        new = plugbay("token", "--rotate", cwd=workdir).stdout.splitlines()[0]
        assert new != host.token
        assert httpx.get(f"{host.url}/api/v1/plugins", headers=host.auth).status_code == 401
        # the CLI reads the new token: it keeps working
        assert plugbay("call", "acme.calc", "add", "a=1", cwd=workdir).stdout == "2\n"
    # no host: reload runs in a host of its own
    alone = plugbay("reload", "acme.calc", cwd=workdir)
    # the rollback is the operator's choice, kept across restarts: 1.0.0 serves
    assert alone.returncode == 0 and "acme.calc: reloaded 1.0.0 → 1.0.0" in alone.stdout


def test_the_token_is_printed_once_and_kept_private(workdir: Path) -> None:
    with plugbay_run(workdir) as first:
        assert f"dashboard: {first.url}/?token={first.token}" in first.output
    assert (workdir / ".plugbay" / "api-token").stat().st_mode & 0o777 == 0o600
    with plugbay_run(workdir) as second:
        assert second.token == first.token
        assert first.token not in second.output
        assert "('plugbay token' prints a sign-in link)" in second.output


def test_a_public_address_needs_an_explicit_flag(workdir: Path) -> None:
    refused = plugbay("run", "--http", "0.0.0.0:0", cwd=workdir)
    assert refused.returncode == 2
    assert "--http 0.0.0.0:0 would let other machines reach this host's API" in refused.stderr
    assert "add --http-public" in refused.stderr
    bad = plugbay("run", "--http", "localhost", cwd=workdir)
    assert bad.returncode == 2 and "'localhost' is not HOST:PORT" in bad.stderr


def test_a_taken_port_is_a_warning_and_the_host_serves_on_a_free_one(workdir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with plugbay_run(workdir, "--http", f"127.0.0.1:{port}") as host:
            assert f"127.0.0.1:{port} is taken; the API is on {host.url} instead" in (host.output)
            assert not host.url.endswith(f":{port}")
            # the CLI finds it through host.json and asks it
            rows = json.loads(plugbay("list", "--json", cwd=workdir).stdout)
            assert {r["state"] for r in rows} == {"active"}
            assert {r["source"] for r in rows} == {f"host pid {host.proc.pid}"}


def test_a_copy_of_the_state_directory_is_not_the_running_hosts(workdir: Path) -> None:
    """``cp -a .plugbay copy`` copies host.json too: commands on the copy act on the copy,
    never on the host serving the original (an operator's copy for a look, or a restore
    tried beside it, must not disable plugins on the live host)."""
    import shutil

    with plugbay_run(workdir) as host:
        copy = workdir / "copy"
        shutil.copytree(host.state, copy, ignore=shutil.ignore_patterns("host.lock"))
        assert (copy / "host.json").exists()
        done = plugbay("disable", "acme.user", "--state", str(copy), cwd=workdir)
        assert done.returncode == 0, done.stderr
        # the live host still serves it; the copy has it disabled
        live = {r["id"]: r for r in json.loads(plugbay("list", "--json", cwd=workdir).stdout)}
        assert live["acme.user"]["state"] == "active"
        assert live["acme.user"]["source"] == f"host pid {host.proc.pid}"
        listed = plugbay("list", "--json", "--state", str(copy), cwd=workdir).stdout
        copied = {r["id"]: r for r in json.loads(listed)}
        assert copied["acme.user"]["state"] == "disabled"
        assert copied["acme.user"]["source"] != f"host pid {host.proc.pid}"
        assert plugbay("call", "acme.calc", "add", "a=2", "b=3", cwd=workdir).stdout == "5\n"


def test_an_upgrade_beside_a_running_host_goes_through_its_api(workdir: Path) -> None:
    """'plugbay install' then 'plugbay upgrade' while 'plugbay run' serves: the running
    host finds the version installed since it started and swaps to it (it refused,
    telling to stop the host, while reload and rollback went through the API)."""
    newer = workdir / "calc-2"
    newer.mkdir()
    source = workdir / "plugins" / "acme.calc-1.0.0"
    for name in ("plugin.toml", "main.py"):
        text = (source / name).read_text()
        (newer / name).write_text(text.replace('version = "1.0.0"', 'version = "1.1.0"'))
    with plugbay_run(workdir) as host:
        installed = plugbay("install", str(newer), cwd=workdir)
        assert installed.returncode == 0, installed.stderr
        dry = plugbay("upgrade", "acme.calc", "--dry-run", cwd=workdir)
        assert dry.returncode == 0, dry.stderr
        assert "acme.calc: would move 1.0.0 → 1.1.0" in dry.stdout
        done = plugbay("upgrade", "acme.calc", cwd=workdir)
        assert done.returncode == 0, done.stderr
        assert "acme.calc: moved 1.0.0 → 1.1.0" in done.stdout
        rows = {r["id"]: r for r in json.loads(plugbay("list", "--json", cwd=workdir).stdout)}
        assert rows["acme.calc"]["version"] == "1.1.0"
        assert rows["acme.calc"]["source"] == f"host pid {host.proc.pid}"
        assert plugbay("call", "acme.calc", "add", "a=2", "b=3", cwd=workdir).stdout == "5\n"
        # nothing newer: the store's state refuses it (409), the request itself was fine
        again = httpx.post(f"{host.url}/api/v1/plugins/acme.calc/upgrade", headers=host.auth)
        assert again.status_code == 409, again.text
        assert "1.1.0 is the newest version installed" in again.json()["error"]["message"]
