"""What a user reads about a plugin that restarts, a Wasm plugin, and a host that serves
no API: a restart reads ``restarting`` until the new worker is active (not
``initializing`` while it starts); ``plugbay info`` says what serves a Wasm plugin (an
instance of its module in the host's Wasm runtime, not a worker) and why it restarts (a
trap); ``plugbay debug`` refuses a Wasm plugin, saying what helps instead; and ``plugbay
info`` beside a host that holds the state's lock without an API answers from what is
recorded and on disk, where it failed with ``host_locked``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from plugbay import PluginCrashed, PluginStateError
from plugbay.runtime.host import Host
from tests import _wasm
from tests._cli import cli_env, plugbay
from tests._running import plugbay_run
from tests._served import api_served
from tests._waiting import until, until_sync
from tests.conftest import PluginFactory
from tests.test_supervision import crasher, info_state

pytestmark = pytest.mark.slow

ID = "acme.crasher"  # the id tests.test_supervision.info_state looks for

#: a sandboxed plugin whose restart is held in its start until the test says go: its
#: first start leaves "started" in its data directory; a later one writes "waiting" and
#: waits for "go" (bounded by the host's init timeout)
SLOW_RESTART = """
import asyncio, os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        data = context.environment.data_dir
        if (data / "started").exists():
            (data / "waiting").write_text("")
            while not (data / "go").exists():
                await asyncio.sleep(0.02)
        (data / "started").write_text("")

    @command
    def pid(self) -> int:
        return os.getpid()

    @command
    def crash(self) -> None:
        os._exit(9)  # its worker dies under the call
"""


async def test_a_restart_reads_restarting_until_the_new_worker_is_active(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins(ID, SLOW_RESTART, extra='isolation = "process"\n')
    data = tmp_path / "state" / "data" / ID
    host = Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False,
        restart_backoff=0.1, init_timeout=60,
    )  # fmt: skip
    async with host, api_served(host) as served:
        http = httpx.AsyncClient(
            base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}
        )
        first = await host.call(ID, "pid")
        with pytest.raises(PluginCrashed):
            await host.call(ID, "crash")
        # the backoff is over and the new worker is in its start, held there
        await until(lambda: (data / "waiting").exists(), "the restart's start")
        info = host.info(ID)
        assert info["state"] == "restarting"  # was 'initializing'
        restart = info["restart"]
        assert (restart["attempt"], restart["max_attempts"]) == (1, 4)
        assert restart["next_try"] <= time.time()  # when this try began
        assert info["reason"].startswith("its worker process exited")
        assert "restart 1 of 4 under way since " in info["reason"]
        assert info["error"]["code"] == "plugin_crashed"
        assert "initializing" not in [t["state"] for t in info["transitions"]]
        [row] = [r for r in (await http.get("/api/v1/plugins")).json() if r["id"] == ID]
        assert (row["state"], row["restart"]) == ("restarting", restart)  # list, dashboard
        detail = (await http.get(f"/api/v1/plugins/{ID}")).json()
        assert (detail["state"], detail["restart"]) == ("restarting", restart)
        ready = (await http.get("/readyz")).json()
        assert (ready["status"], ready["failed"]) == ("ready", [])
        health = (await http.get("/api/v1/health")).json()
        assert health["plugins"][ID] == "restarting"
        assert info_state((await http.get("/metrics")).text) == "restarting"
        # its start read its config already: a change now waits for a reload, said so
        config = (await http.get(f"/api/v1/plugins/{ID}/config")).json()
        assert config["pending"] == (
            f"{ID} is restarting: once it is active, 'plugbay reload {ID}' "
            f"(POST /api/v1/plugins/{ID}/reload) gives it this config"
        )
        waiting = asyncio.create_task(host.call(ID, "pid"))  # calls wait for the restart
        assert not (data / "go").exists() and host.plugin(ID).state == "restarting"

        (data / "go").write_text("")
        assert await waiting != first
        assert host.plugin(ID).state == "active"
        assert host.info(ID)["restart"] is None and host.info(ID)["reason"] is None
        await http.aclose()


# --------------------------------------------------------------------------- Wasm

#: traps on order(n < 0); its second start waits for /data/go, so the test reads
#: `plugbay info` while the restart is under way
TRAPPER = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "plugbay.h"

int pb_init(pb_json config, pb_buf *out) {
    (void)config; (void)out;
    if (access("/data/started", F_OK) == 0) {
        FILE *w = fopen("/data/waiting", "w");
        if (w) fclose(w);
        while (access("/data/go", F_OK) != 0) usleep(20000);
    }
    FILE *f = fopen("/data/started", "w");
    if (f) fclose(f);
    return 0;
}

static __attribute__((noinline)) void check_order(long long quantity) {
    if (quantity < 0) __builtin_trap();
}

int pb_command(const char *name, pb_json params, pb_buf *out) {
    long long n = 0;
    pb_get_int(params, "n", &n);
    if (strcmp(name, "order") == 0) { check_order(n); pb_puts(out, "\"ordered\""); return 0; }
    return pb_fail(out, "no such command");
}
"""
TRAPPER_COMMANDS = """
[commands.order]
params = { n = "int" }
returns = "str"

[resources]
memory = "16MiB"
init-timeout = 120
"""
WASM = "acme.trapper"


@_wasm.needs_toolchain
def test_info_says_what_serves_a_wasm_plugin_and_why_it_restarts(tmp_path: Path) -> None:
    _wasm.write_plugin(tmp_path / "plugins" / "trapper", WASM, TRAPPER, TRAPPER_COMMANDS)
    data = tmp_path / ".plugbay" / "data" / WASM
    with plugbay_run(tmp_path, "--plugins", "plugins") as running:
        http = httpx.Client(base_url=running.url, headers=running.auth)
        active = " ".join(plugbay("info", WASM, cwd=tmp_path).stdout.split())
        assert "sandboxed worker" not in active and "worker process" not in active.replace(
            "no worker process", ""
        )
        assert (
            "isolation an instance of its Wasm module in the host's Wasm runtime (wasmtime, "
            "on a thread of the host's process; no worker process)" in active
        )
        assert "usage its instance, on a thread of the host's process (pid " in active
        assert "linear memory " in active and " of 16 MiB" in active
        # what bounds a module, not a worker's process limits
        # timeout: the deadline its calls get, here the host's call timeout (30 s)
        assert "limits memory 16 MiB, cpu-seconds unlimited, timeout 30 s a call" in active
        assert "open-files" not in active and "threads 8" not in active

        trapped = http.post(f"/api/v1/plugins/{WASM}/commands/order", json={"n": -1})
        assert trapped.json()["error"]["code"] == "plugin_crashed"
        until_sync(lambda: (data / "waiting").exists(), "its restart's start")
        shown = plugbay("info", WASM, cwd=tmp_path)
        text = " ".join(shown.stdout.split())
        assert shown.returncode == 0, shown.stderr
        assert f"{WASM} 1.0.0 restarting" in text
        assert "restart 1 of 4, under way since " in text
        assert "starting a new instance of its module in the host's Wasm runtime" in text
        assert "reason: its Wasm instance trapped in 'order'" in text
        assert "in check_order ← pb_command" in text
        assert "worker" not in text.replace("no worker process", "")
        as_json = json.loads(plugbay("info", WASM, "--json", cwd=tmp_path).stdout)
        assert as_json["state"] == "restarting" and as_json["restart"]["attempt"] == 1

        (data / "go").write_text("")
        ordered = http.post(f"/api/v1/plugins/{WASM}/commands/order", json={"n": 1})
        assert ordered.json()["result"] == "ordered"  # it waited for the restart
        assert "restart" not in " ".join(plugbay("info", WASM, cwd=tmp_path).stdout.split())
        http.close()


@_wasm.needs_toolchain
async def test_a_call_that_outwaits_a_wasm_restart_says_the_instance_trapped(
    tmp_path: Path,
) -> None:
    _wasm.write_plugin(tmp_path / "plugins" / "trapper", WASM, TRAPPER, TRAPPER_COMMANDS)
    data = tmp_path / "state" / "data" / WASM
    host = Host(
        tmp_path / "plugins", state_dir=tmp_path / "state", entry_points=False,
        restart_backoff=0.1, call_timeout=0.5,
    )  # fmt: skip
    async with host:
        with pytest.raises(PluginCrashed):
            await host.call(WASM, "order", n=-1)
        await until(lambda: (data / "waiting").exists(), "its restart's start")
        with pytest.raises(PluginStateError) as waited:  # the restart outlasts the call's wait
            await host.call(WASM, "order", n=1)
        assert (
            "is restarting after a crash and takes no calls until it is back: its Wasm "
            "instance trapped in 'order'"
        ) in str(waited.value)
        assert waited.value.hint is not None
        assert waited.value.hint.startswith("its Wasm instance trapped and is being restarted")
        (data / "go").write_text("")
        await until(lambda: host.plugin(WASM).state == "active", "the restart")
        assert await host.call(WASM, "order", n=1) == "ordered"


@_wasm.needs_toolchain
async def test_the_dashboard_charts_a_wasm_plugin_s_own_memory(tmp_path: Path) -> None:
    # its handle's pid is the host's, so the chart showed the host's whole RSS, labelled
    # "memory (its worker)"
    import psutil

    from plugbay.web._series import Series

    _wasm.write_plugin(tmp_path / "plugins" / "trapper", WASM, TRAPPER, TRAPPER_COMMANDS)
    (tmp_path / "state" / "data" / WASM).mkdir(parents=True)
    (tmp_path / "state" / "data" / WASM / "go").write_text("")
    host = Host(tmp_path / "plugins", state_dir=tmp_path / "state", entry_points=False)
    async with host:
        assert await host.call(WASM, "order", n=1) == "ordered"
        point = Series(host, interval=1.0).sample()[WASM]
        linear = host.plugin(WASM).handle.usage()["linear_memory_bytes"]  # type: ignore[union-attr]
    assert point["memory_of"] == "module" and point["memory_shared"] is False
    assert point["memory_mb"] == round(linear / 2**20, 2)
    assert point["memory_mb"] < psutil.Process().memory_info().rss / 2**20 / 4


@_wasm.needs_toolchain
def test_debug_refuses_a_wasm_plugin_and_says_what_helps(tmp_path: Path) -> None:
    _wasm.write_plugin(tmp_path / "plugins" / "trapper", WASM, TRAPPER, TRAPPER_COMMANDS)
    done = plugbay("debug", WASM, "order", "n=1", cwd=tmp_path, stdin="c\n")
    assert done.returncode == 1, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert "result" not in done.stdout and "stopping in" not in done.stdout  # nothing ran
    assert f"plugin '{WASM}': cannot be debugged with 'plugbay debug'" in said
    assert "runs Python plugins' code under pdb" in said  # what
    assert f'{WASM} 1.0.0 is a Wasm plugin (runtime = "wasm")' in said  # why
    assert "trapper/plugin.toml" in said  # where
    assert f"'plugbay call {WASM} COMMAND key=value…'" in said  # what to do instead
    assert f"'plugbay logs {WASM}'" in said and "docs/wasm-plugins.md" in said
    assert not (tmp_path / ".plugbay" / "host.lock").exists()  # no host was started


# --------------------------------------------------------------------------- no API

#: an application embedding a Host on ./plugins and ./.plugbay (no API); with a plugin id
#: as its argument, it crashes that plugin's worker first (its restart comes in 20 s)
EMBEDDED = """
import asyncio, sys
from plugbay import Host, PluginCrashed

async def main() -> None:
    host = Host("plugins", state_dir=".plugbay", entry_points=False, restart_backoff=20)
    async with host:
        if sys.argv[1:]:
            try:
                await host.call(sys.argv[1], "crash")
            except PluginCrashed:
                pass
        print("serving", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@contextmanager
def holding_the_lock(kind: str, cwd: Path, *args: str) -> Iterator[int]:
    """A second process that holds ``cwd/.plugbay``'s lock and serves no API: ``plugbay
    run --no-http``, or an application embedding ``Host`` (``args``: :data:`EMBEDDED`'s);
    its pid."""
    if kind == "run --no-http":
        argv = [sys.executable, "-m", "plugbay.cli", "run", "--no-http", "--no-metrics"]
    else:
        argv = [sys.executable, "-c", EMBEDDED, *args]
    proc = subprocess.Popen(
        argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=cli_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "serving" not in (line := proc.stdout.readline()):
            assert line or proc.poll() is None, "the host ended before serving"
        yield proc.pid
    finally:
        if kind == "run --no-http":
            proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


@pytest.mark.parametrize("kind", ["run --no-http", "an application's Host"])
def test_info_beside_a_host_without_an_api_answers_from_what_it_recorded(
    plugins: PluginFactory, tmp_path: Path, kind: str
) -> None:
    plugins("acme.calc", extra='description = "Adds."\n')
    plugins("acme.bad", "raise RuntimeError('boom')\n")
    with holding_the_lock(kind, tmp_path) as pid:
        shown = plugbay("info", "acme.calc", cwd=tmp_path)
        assert shown.returncode == 0, shown.stdout + shown.stderr  # was host_locked
        text = " ".join(shown.stdout.split())
        assert "host_locked" not in shown.stderr and "another host" not in shown.stderr
        assert "acme.calc 1.0.0 active" in text  # what the running host recorded
        assert f"(pid {pid})" in text and "serves no API" in text
        assert "its live figures (commands, config, usage, permissions in force) are not " in text
        as_json = json.loads(plugbay("info", "acme.bad", "--json", cwd=tmp_path).stdout)
        assert as_json["state"] == "failed" and "raised RuntimeError: boom" in as_json["reason"]
        assert as_json["source"] == f"host pid {pid}"
        assert "serves no API" in as_json["notes"][0]
        listed = plugbay("list", cwd=tmp_path)
        assert "no host is running" not in listed.stderr  # a host is: it says which
        assert f"(pid {pid}), which serves no API" in " ".join(listed.stdout.split())
        # what would change its plugins is refused, naming it, not a fight over the lock
        refused = plugbay("reload", "acme.calc", cwd=tmp_path)
        assert refused.returncode == 1 and f"a host (pid {pid}) serves" in refused.stderr
    assert os.path.exists(tmp_path / ".plugbay" / "host.lock")


def test_a_crash_recorded_by_a_host_without_an_api_reads_restarting(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """What the host recorded of a crash whose restart comes is ``restarting`` (it read
    ``failed``, the word for a plugin the supervisor gave up on)."""
    crasher(plugins)
    with holding_the_lock("an application's Host", tmp_path, ID):
        [row] = [
            r for r in json.loads(plugbay("list", "--json", cwd=tmp_path).stdout) if r["id"] == ID
        ]
        assert row["state"] == "restarting"
        assert "its worker process exited with code 9" in row["reason"]
        assert row["reason"].endswith("; restart 1 after 20 s")
        shown = " ".join(plugbay("info", ID, cwd=tmp_path).stdout.split())
        assert f"{ID} 1.0.0 restarting" in shown
        assert "restarting: plugin 'acme.crasher': its worker process exited" in " ".join(
            plugbay("list", cwd=tmp_path).stdout.split()
        )


def test_logs_and_metrics_beside_an_application_s_host_name_it(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    # logs said "no host is running" beside an application's Host, and metrics looked
    # for "plugbay" in the holder's command line, so it said the same
    plugins("acme.calc")
    with holding_the_lock("an application's Host", tmp_path) as pid:
        logs = plugbay("logs", "acme.calc", cwd=tmp_path)
        assert logs.returncode == 0, logs.stderr
        assert "no host is running" not in logs.stderr
        metrics = plugbay("metrics", cwd=tmp_path)
        assert metrics.returncode == 1
        said = " ".join(metrics.stderr.split())
        assert f"a host (pid {pid}) holds" in said and "serves neither an API nor /metrics" in said
        assert "host.render_metrics()" in said
    gone = plugbay("logs", "acme.calc", cwd=tmp_path)
    assert "no host is running" in gone.stderr
