"""`plugbay profile ID --seconds N` beside a real `plugbay run`: the worker that serves
the plugin samples itself while it serves; no second copy of the plugin is started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests._running import plugbay_run
from tests.conftest import PluginFactory

BUSY = """
import time

from plugbay import PluginContext, UtilityPlugin, command


def spin_the_prayer_wheel(until: float) -> int:
    turns = 0
    while time.monotonic() < until:
        turns += 1
    return turns


class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        self.started = 0

    @command(blocking=True)
    def crunch(self, seconds: float) -> int:
        return spin_the_prayer_wheel(time.monotonic() + seconds)

    @command
    def ping(self) -> str:
        return "pong"
"""


def plugbay(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "plugbay.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_profile_samples_the_sandboxed_worker_that_serves(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.busy", BUSY)
    with plugbay_run(tmp_path) as host, httpx.Client(base_url=host.url, headers=host.auth) as api:
        before = api.get("/api/v1/plugins/acme.busy").json()
        assert before["usage"]["sandboxed"] is True, before  # deny by default: confined
        worker = before["usage"]["pid"]
        assert worker != host.proc.pid

        # a neighbour's calls keep being answered while the worker is sampled
        answered: list[str] = []
        stop = threading.Event()

        def keep_calling() -> None:
            with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as c:
                while not stop.is_set():
                    reply = c.post("/api/v1/plugins/acme.busy/commands/ping", json={})
                    answered.append(reply.json()["result"])

        caller = threading.Thread(target=keep_calling)
        caller.start()
        try:
            done = plugbay(
                "profile", "acme.busy", "crunch", "seconds=3", "--seconds", "2",
                "--out", str(tmp_path / "flame"), cwd=tmp_path,
            )  # fmt: skip
        finally:
            stop.set()
            caller.join(timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "result: " in done.stdout  # the command called through the host meanwhile
        assert "spin_the_prayer_wheel" in done.stdout  # among the busiest functions
        assert f"pid {worker}" in done.stdout  # the serving worker, not a copy

        scope = json.loads((tmp_path / "flame" / "acme.busy.speedscope.json").read_text())
        names = [frame["name"] for frame in scope["shared"]["frames"]]
        assert "spin_the_prayer_wheel" in names
        wheel = names.index("spin_the_prayer_wheel")
        profile = scope["profiles"][0]
        busy = sum(
            w for stack, w in zip(profile["samples"], profile["weights"], strict=True)
            if stack and stack[-1] == wheel
        )  # fmt: skip
        # the wheel turned for most of the 2 s sampled (one thread of several: ≥ 1/2 s)
        assert busy >= 0.5, busy
        svg = (tmp_path / "flame" / "acme.busy.svg").read_text()
        assert svg.startswith("<svg") and "spin_the_prayer_wheel" in svg

        # it kept serving, in the same worker: nothing restarted, no second copy
        assert answered and set(answered) == {"pong"}
        after = api.get("/api/v1/plugins/acme.busy").json()
        assert after["state"] == "active" and after["usage"]["pid"] == worker
        assert api.post("/api/v1/plugins/acme.busy/commands/ping", json={}).json()["result"] == (
            "pong"
        )


def test_profile_refuses_what_cannot_be_profiled(plugins: PluginFactory, tmp_path: Path) -> None:
    plugins("acme.busy", BUSY)
    # no host runs: no serving worker to sample, and the message says what to do
    alone = plugbay("profile", "acme.busy", "--seconds", "1", cwd=tmp_path)
    assert alone.returncode == 1
    assert "no host serves" in alone.stderr and "make run" in alone.stderr
    with plugbay_run(tmp_path) as host, httpx.Client(base_url=host.url, headers=host.auth) as api:
        too_long = api.post("/api/v1/plugins/acme.busy/profile", params={"seconds": 3000})
        assert too_long.status_code == 422
        unknown = api.post("/api/v1/plugins/acme.nope/profile", params={"seconds": 1})
        assert unknown.status_code == 404
        assert "acme.nope" in unknown.json()["error"]["message"]
        anonymous = httpx.post(f"{host.url}/api/v1/plugins/acme.busy/profile")
        assert anonymous.status_code == 401
        short = api.post(
            "/api/v1/plugins/acme.busy/profile", params={"seconds": 0.3, "interval": 0.01}
        )
        assert short.status_code == 200, short.text
        body = short.json()
        assert body["plugin"] == "acme.busy" and body["profile"]["samples"] >= 5
