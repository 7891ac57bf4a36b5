"""Joining a Ray cluster, and the host's refusals in its own words (``isolation._ray_join``,
``isolation._ray_probe``): a port that takes connections but is not a Ray head, token
authentication that the cluster and the host do not share (``address = "auto"`` joins
whatever cluster runs on this machine), a ``[ray] listen`` this host cannot bind, and
``plugbay info`` of a plugin not running that its host would place on Ray.

Real parts: ``plugbay run`` processes, a Ray head of the test's own (``ray start --head
--block``, ended by its process group, never ``ray stop``), a real listening socket."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._cli import PLUGBAY, cli_env, run_cli
from tests.conftest import PluginFactory

#: Ray's own settings of token authentication: each test says what its host has
AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")
TOKEN = "0123456789abcdef0123456789abcdef"


def two_plugins(plugins: PluginFactory, tmp_path: Path, address: str, extra: str = "") -> None:
    plugins("acme.notes", dirname="acme.notes")
    plugins("other.local", dirname="other.local")
    (tmp_path / "plugbay.toml").write_text(
        f'[ray]\naddress = "{address}"\nplugins = ["acme.*"]\n{extra}'
    )


def run_once(tmp_path: Path, plugins: PluginFactory, env: dict[str, str]) -> tuple[str, float]:
    """``plugbay run --once`` in ``tmp_path``: its output, and how long it took."""
    started = time.monotonic()
    done = run_cli(
        [*PLUGBAY, "run", "--once", "--no-http", "--no-metrics", "--plugins", str(plugins.root)],
        cwd=tmp_path,
        timeout=120,
        env=env,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # --once: a plugin failed
    lines = out.splitlines()
    assert any("other.local" in line and "active" in line for line in lines), out
    assert any("acme.notes" in line and "failed" in line for line in lines), out
    return " ".join(out.split()), time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- not a Ray head


@pytest.mark.slow
def test_a_port_that_takes_connections_but_is_not_a_ray_head_is_refused_in_bounded_time(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """The TCP knock passes (something listens), and Ray alone would wait for a head that
    never answers, the host's start with it: the host asks Ray's client, bounded, then
    fails each Ray plugin naming the address; its other plugins serve."""
    pytest.importorskip("ray", reason="the Ray tests need plugbay[ray]")
    with socket.socket() as not_ray:  # takes connections (the backlog), says nothing
        not_ray.bind(("127.0.0.1", 0))
        not_ray.listen(64)
        address = f"127.0.0.1:{not_ray.getsockname()[1]}"
        two_plugins(plugins, tmp_path, address)
        out, took = run_once(tmp_path, plugins, cli_env())
    assert took < 60, f"{took:.1f} s: {out}"
    assert f"could not join the Ray cluster ([ray] address = '{address}')" in out, out
    assert f"{address} takes TCP connections but does not answer as a Ray cluster's head" in out
    assert "it must be the head's GCS address" in out, out


# --------------------------------------------------------------------------- token authentication


@contextlib.contextmanager
def ray_head(mode: str) -> Iterator[Path]:
    """A Ray head of this test's own, with token authentication ``mode`` ("token": the
    token :data:`TOKEN`), its temp root the returned directory (``RAY_TMPDIR`` there makes
    ``address = "auto"`` find it). Ended by its process group."""
    root = Path(tempfile.mkdtemp(prefix="pbj-", dir="/tmp"))  # short: Ray's socket paths
    home = root / "home"
    home.mkdir()
    env = cli_env({"HOME": str(home), "RAY_AUTH_MODE": mode, "RAY_USAGE_STATS_ENABLED": "0"},
                  drop=AUTH[1:])  # fmt: skip
    if mode == "token":
        env["RAY_AUTH_TOKEN"] = TOKEN
    ray = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={free_port()}", "--num-cpus=1",
         "--include-dashboard=false", f"--temp-dir={root / 'ray'}",
         "--object-store-memory=80000000"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        found = root / "ray" / "ray_current_cluster"
        end = time.monotonic() + 90
        while not (found.exists() and found.read_text().strip()):
            assert head.poll() is None, "the Ray head ended while starting"
            assert time.monotonic() < end, "the Ray head did not start within 90 s"
            time.sleep(0.1)
        yield root
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_auto_with_a_token_here_and_a_cluster_without_one_says_so_and_what_to_set(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """``~/.ray/auth_token`` on the host (as any "local" cluster of Ray's leaves): Ray turns
    token authentication on by itself for "auto", joins a cluster that has none, then
    refuses its nodes' calls, and the plugin's agent ended "before it ran" in Ray's words.
    The host says the cause and what to set, before joining."""
    pytest.importorskip("ray", reason="the Ray tests need plugbay[ray]")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("fedcba9876543210fedcba9876543210")
    two_plugins(plugins, tmp_path, "auto")
    with ray_head("disabled") as root:
        env = cli_env({"HOME": str(home), "RAY_TMPDIR": str(root)}, drop=AUTH)
        out, _ = run_once(tmp_path, plugins, env)
    assert "could not join the Ray cluster ([ray] address = 'auto')" in out, out
    assert "runs without token authentication, and this host would send a token" in out, out
    assert f"a token in {home / '.ray' / 'auth_token'}" in out, out
    assert "set RAY_AUTH_MODE=disabled in the host's environment" in out, out


@pytest.mark.slow
def test_auto_without_a_token_here_and_a_cluster_that_requires_one_says_so_at_once(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """The reverse: Ray retried for 20 s, then said only "Failed to connect"."""
    pytest.importorskip("ray", reason="the Ray tests need plugbay[ray]")
    home = tmp_path / "home"
    home.mkdir()
    two_plugins(plugins, tmp_path, "auto")
    with ray_head("token") as root:
        env = cli_env({"HOME": str(home), "RAY_TMPDIR": str(root)}, drop=AUTH)
        out, took = run_once(tmp_path, plugins, env)
        # with the cluster's token, the same host joins it
        env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
        done = run_cli(
            [*PLUGBAY, "run", "--once", "--no-http", "--no-metrics", "--plugins",
             str(plugins.root)], cwd=tmp_path, timeout=120, env=env,
        )  # fmt: skip
    assert "requires a token (token authentication), and this host sends none" in out, out
    assert "and set RAY_AUTH_MODE=token" in out, out
    assert took < 15, f"{took:.1f} s"  # not Ray's 20 s of retries
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- [ray] listen


def test_a_listen_address_this_host_cannot_bind_is_refused_naming_the_file(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """``[ray] listen`` not on this machine: no node could reach it. Said before Ray is
    asked: what, where (the config file's ``[ray] listen``) and what to set."""
    two_plugins(plugins, tmp_path, f"127.0.0.1:{free_port()}", 'listen = "203.0.113.7"\n')
    out, _ = run_once(tmp_path, plugins, cli_env())
    assert "[ray] listen = '203.0.113.7': this host cannot bind it" in out, out
    assert "(at plugbay.toml, [ray] listen)" in out, out
    assert "set [ray] listen to an address of this machine" in out, out


# --------------------------------------------------------------------------- plugbay info


def test_info_of_a_plugin_not_running_says_its_host_would_place_it_on_ray(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """No host runs: ``info`` reads the config file's policy and says where a host
    started now would run the plugin (on Ray, and why), not "not known here"."""
    two_plugins(plugins, tmp_path, "local")
    argv = [*PLUGBAY, "info", "acme.notes", "--plugins", str(plugins.root)]
    text = run_cli(argv, cwd=tmp_path)
    assert text.returncode == 0, text.stdout + text.stderr
    said = " ".join(text.stdout.split())
    assert "isolation on Ray when it starts, not now: placed on Ray by the host" in said, said
    assert "([ray] plugins = 'acme.*')" in said, said
    data = json.loads(run_cli([*argv, "--json"], cwd=tmp_path).stdout)
    assert data["isolation"] == "ray" and data["state"] == "not running", data
    assert data["sandbox"]["sandboxed"] and "[ray] plugins" in data["sandbox"]["reason"]
    other = [*PLUGBAY, "info", "other.local", "--plugins", str(plugins.root), "--json"]
    local = json.loads(run_cli(other, cwd=tmp_path).stdout)
    assert local["isolation"] == "process", local


async def test_info_beside_a_running_host_says_where_a_disabled_plugin_would_run(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """A plugin the running host has not started (disabled since its start): ``info``
    says it goes on Ray when it starts, not "inline" nor a local worker."""
    pytest.importorskip("ray", reason="the Ray tests need plugbay[ray]")
    from plugbay.cli._plugin_views import _isolation_text
    from plugbay.isolation.policy import IsolationPolicy
    from plugbay.runtime.host import Host

    plugins("acme.notes", dirname="acme.notes")
    policy = IsolationPolicy.from_config(
        {"ray": {"address": f"127.0.0.1:{free_port()}", "plugins": ["acme.*"]}}
    )

    def host() -> Host:
        return Host(plugins.root, state_dir=tmp_path / "state", entry_points=False,
                    policy=policy, init_timeout=30, cleanup_timeout=2.0,
                    monitor={"interval": 3600})  # fmt: skip

    async with host() as first:  # no head there: it fails, and is disabled
        await first.disable("acme.notes", "not now")
    async with host() as second:
        assert second.plugin("acme.notes").state == "disabled"
        info = second.info("acme.notes")
    assert info["isolation"] == "ray", info["isolation"]
    text = _isolation_text(info, info["manifest"])
    assert text.startswith("on Ray when it starts, not now: placed on Ray by the host"), text


class LeavingRay:
    """What ``leave`` uses of Ray, when the head is gone: ``shutdown`` raises, or waits
    until the test releases it (Ray waiting for the lost head)."""

    def __init__(self, *, hangs: bool) -> None:
        self.hangs = hangs
        self.released = threading.Event()

    def shutdown(self) -> None:
        if self.hangs:
            self.released.wait()
        else:
            raise RuntimeError("the GCS at 127.0.0.1:6379 is gone")


@pytest.mark.parametrize("hangs", [False, True], ids=["raises", "hangs"])
def test_leaving_a_private_cluster_puts_the_token_variables_back_whatever_leaving_does(
    hangs: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private cluster's join names its token (``RAY_AUTH_TOKEN_PATH``) and Ray sets
    ``RAY_AUTH_MODE=token``; with the head lost, leaving raised, or timed out, and both
    stayed in the host's environment: its next join (``auto``) turned token
    authentication on against a cluster without it. They are put back in either case."""
    from plugbay.isolation import _ray_join

    for name in AUTH:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_ray_join, "_refresh_token_config", lambda: None)  # this process's Ray
    _ray_join.private_token(str(tmp_path))
    token = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
    assert token.parent == tmp_path and token.exists()
    os.environ["RAY_AUTH_MODE"] = "token"  # as Ray sets it for a cluster it starts
    ray = LeavingRay(hangs=hangs)
    try:
        if hangs:
            _ray_join.leave(ray, within=0.2)  # given up: the host goes on
        else:
            with pytest.raises(RuntimeError, match=r"the GCS at 127\.0\.0\.1:6379 is gone"):
                _ray_join.leave(ray)
    finally:
        ray.released.set()
    assert {name: os.environ.get(name) for name in AUTH} == dict.fromkeys(AUTH)
    assert not token.exists()


def test_the_bench_keeps_its_clusters_token_through_ray_joins_public_pair() -> None:
    """``make bench``'s Ray anchor keeps its cluster's token as a private cluster's join
    does, with the names ``_ray_join`` exports for it, not two private ones a rename there
    would break unnoticed (the bench is not run with the tests)."""
    import ast

    from plugbay.isolation import _ray_join

    bench = Path(__file__).resolve().parents[1] / "bench" / "sandbox.py"
    taken = {
        alias.name
        for node in ast.walk(ast.parse(bench.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == "plugbay.isolation._ray_join"
        for alias in node.names
    }
    assert taken == {"private_token", "restore_token_environment"}, taken
    assert taken <= set(_ray_join.__all__), taken
