"""Wasm plugins (``isolation.wasm``): a C plugin from the template, built by
``plugbay build``, called through host.call, the HTTP API and the CLI, checked
against its declared types; its storage, logs and metrics; its compiled module
cached across restarts; a hot reload with no failed call; calls off the loop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime

from plugbay.api.errors import (
    ManifestError,
    ParameterError,
    PermissionDenied,
    PluginCrashed,
    PluginTimeout,
    ResultTypeError,
)
from plugbay.isolation import affinity
from plugbay.model.manifest import parse_manifest
from plugbay.model.wasm_commands import parse_type
from plugbay.runtime.host import Host
from tests import _wasm
from tests._served import api_served
from tests._waiting import until

pytestmark = _wasm.needs_toolchain

PLUGIN = "acme.textstats"
HERE = Path(__file__).resolve().parent


def textstats(root: Path, *, source: str | None = None, version: str = "1.0.0") -> Path:
    return _wasm.write_plugin(
        root / "textstats",
        PLUGIN,
        source or _wasm.template_source(),
        _wasm.template_manifest(),
        version,
    )


def new_host(tmp_path: Path, **options: Any) -> Host:
    options.setdefault("state_dir", tmp_path / "state")
    return Host(tmp_path / "plugins", entry_points=False, init_timeout=30, **options)


async def test_a_c_plugin_answers_through_host_call_http_and_its_types(tmp_path: Path) -> None:
    textstats(tmp_path / "plugins")
    async with new_host(tmp_path) as host:
        rec = host.plugin(PLUGIN)
        assert (rec.state, rec.isolation) == ("active", "wasm")
        assert await host.call(PLUGIN, "word_count", text="the cat  sat\non the mat") == 6
        assert await host.call(PLUGIN, "shout", text="héllo") == "HéLLO!"  # UTF-8 kept
        assert await host.call(PLUGIN, "shout", text="a", suffix="?") == "A?"
        with pytest.raises(ParameterError, match="parameter 'a' expects int, got str") as bad:
            await host.call(PLUGIN, "add", a="two", b=3)
        assert bad.value.plugin == PLUGIN
        with pytest.raises(ParameterError, match="missing parameter 'text'"):
            await host.call(PLUGIN, "word_count")
        described = {c["name"]: c["signature"] for c in host.info(PLUGIN)["commands"]}
        assert described["shout"] == "shout(text: str, suffix: str = '!') -> str"

        async with (
            api_served(host) as (url, token),
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http,
        ):
            answer = await http.post(
                f"/api/v1/plugins/{PLUGIN}/commands/add", json={"a": 20, "b": 22}
            )
            assert answer.status_code == 200 and answer.json()["result"] == 42
            wrong = await http.post(
                f"/api/v1/plugins/{PLUGIN}/commands/add", json={"a": "x", "b": 1}
            )
            assert wrong.status_code == 422
            assert "expects int" in wrong.json()["error"]["message"]
            detail = await http.get(f"/api/v1/plugins/{PLUGIN}")
            assert detail.status_code == 200, detail.text
            assert "shout(text: str, suffix: str = '!') -> str" in detail.text
            listed = await http.get("/api/v1/plugins")
            assert listed.status_code == 200 and PLUGIN in listed.text
            usage = await http.get(f"/api/v1/plugins/{PLUGIN}/series")
            assert usage.status_code == 200, usage.text
            assert host.monitor is not None
            await host.monitor.tick()  # its usage sampled, as every plugin's
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200
            assert f'plugin="{PLUGIN}"' in metrics.text


async def test_a_result_that_breaks_its_declared_type_is_refused(tmp_path: Path) -> None:
    liar = _wasm.template_source().replace(
        'pb_printf(out, "%lld", a + b);', 'pb_printf(out, "\\"%lld\\"", a + b);'
    )
    textstats(tmp_path / "plugins", source=liar)
    async with new_host(tmp_path) as host:
        with pytest.raises(ResultTypeError, match="returned str but is declared to return int"):
            await host.call(PLUGIN, "add", a=1, b=2)
        assert await host.call(PLUGIN, "word_count", text="still serving") == 2


async def test_storage_outlives_a_restart_and_the_module_is_not_compiled_again(
    tmp_path: Path,
) -> None:
    textstats(tmp_path / "plugins")
    async with new_host(tmp_path) as host:
        await host.call(PLUGIN, "remember", key="colour", value="teal")
        assert await host.call(PLUGIN, "recall", key="colour") == "teal"
        first = host.plugin(PLUGIN).handle
        assert first is not None and first.usage()["module"] == "compiled"  # type: ignore[index]
    cached = list((tmp_path / "state" / "data" / ".wasm-cache").glob("*.cwasm"))
    assert len(cached) == 1
    async with new_host(tmp_path) as host:
        assert await host.call(PLUGIN, "recall", key="colour") == "teal"
        assert await host.call(PLUGIN, "recall", key="other") is None
        handle = host.plugin(PLUGIN).handle
        assert handle is not None and handle.usage()["module"] == str(cached[0])  # type: ignore[index]


async def test_its_log_and_metrics_are_kept_as_any_plugins(tmp_path: Path) -> None:
    textstats(tmp_path / "plugins")
    async with new_host(tmp_path) as host:
        for _ in range(5):
            await host.call(PLUGIN, "add", a=1, b=1)
        records = host.logs(PLUGIN, limit=50)
        assert any(r["message"] == "ready" for r in records)  # pb_log in its pb_init
        metrics = host.plugin(PLUGIN).metrics
        assert metrics is not None
        assert metrics.snapshot()["commands"]["add"]["calls"] == 5


async def test_a_reload_swaps_the_module_with_no_failed_call_and_hands_state_over(
    tmp_path: Path,
) -> None:
    directory = textstats(tmp_path / "plugins")
    async with new_host(tmp_path, probation=0.1) as host:
        stop = asyncio.Event()
        answers: list[str] = []
        failures: list[BaseException] = []

        async def caller() -> None:
            while not stop.is_set():
                try:
                    answers.append(await host.call(PLUGIN, "shout", text="x"))
                except Exception as exc:
                    failures.append(exc)
                await asyncio.sleep(0)

        callers = [asyncio.create_task(caller()) for _ in range(4)]
        await until(lambda: len(answers) > 50, "calls before the swap")
        louder = _wasm.template_source().replace(
            "pb_put(&joined, suffix, m);",
            "pb_put(&joined, suffix, m);\n    pb_put(&joined, suffix, m);",
        )
        textstats(tmp_path / "plugins", source=louder, version="1.1.0")
        assert (directory / "build" / "plugin.wasm").is_file()
        await host.reload(PLUGIN)
        before = len(answers)
        await until(lambda: len(answers) > before + 50, "calls after the swap")
        stop.set()
        await asyncio.gather(*callers)
        assert failures == []
        assert {"X!", "X!!"} >= set(answers) and answers[-1] == "X!!"
        assert str(host.plugin(PLUGIN).version) == "1.1.0"
        # its in-memory count went from the old instance to the new one
        assert await host.call(PLUGIN, "calls") >= len(answers)


async def test_a_wasm_call_does_not_block_the_event_loop(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    source = (HERE / "wasm_plugins" / "conform.c").read_text().replace("{label}", "v1")
    _wasm.write_plugin(
        root / "c", "acme.conform", source, (HERE / "wasm_plugins" / "conform.toml").read_text()
    )
    async with new_host(tmp_path) as host:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        assert await host.call("acme.conform", "wait", seconds=0.5) == "done"
        elapsed = time.monotonic() - started
        ticker.cancel()
        assert elapsed >= 0.5
        assert ticks >= 20  # the loop ran all along (a blocked loop would tick once)


@pytest.mark.skipif(
    not affinity.ENABLED or len(os.sched_getaffinity(0)) < 2,
    reason="placement is off (PLUGBAY_PLACEMENT=free), or one core: nothing to place",
)
async def test_a_lone_callers_instance_thread_is_held_to_its_core_and_let_go(
    tmp_path: Path,
) -> None:
    """A lone caller's short calls are answered in place, and the instance's thread runs
    on the caller's core (no halted core to wake per call); two at once let it go."""
    root = tmp_path / "plugins"
    source = (HERE / "wasm_plugins" / "conform.c").read_text().replace("{label}", "v1")
    _wasm.write_plugin(
        root / "c", "acme.conform", source, (HERE / "wasm_plugins" / "conform.toml").read_text()
    )
    async with new_host(tmp_path) as host:
        handle: Any = host.plugin("acme.conform").handle
        tid = handle._thread.tid
        everywhere = os.sched_getaffinity(tid)
        # held after HOLD_AFTER short calls in a row; a job that outlasts IN_PLACE (its
        # thread preempted on a loaded machine) lets it go and starts the count again
        for i in range(200):
            assert await host.call("acme.conform", "add", a=i, b=1) == i + 1
            if i > affinity.HOLD_AFTER and len(os.sched_getaffinity(tid)) == 1:
                break
        assert len(os.sched_getaffinity(tid)) == 1, f"not held after {i + 1} lone short calls"
        slow = asyncio.ensure_future(host.call("acme.conform", "wait", seconds=0.3))
        await until(lambda: handle.running(), "the slow call runs")
        assert await host.call("acme.conform", "add", a=2, b=2) == 4  # two at once
        assert os.sched_getaffinity(tid) == everywhere  # let go
        assert await slow == "done"
    assert not handle._thread._thread.is_alive()  # its thread ended with the host


async def test_a_module_that_breaks_the_abi_is_replaced(tmp_path: Path) -> None:
    root = tmp_path / "plugins" / "broken"
    (root / "build").mkdir(parents=True)
    # a reply that points far outside its memory
    wat = """(module (memory (export "memory") 1)
      (func (export "plugbay_alloc") (param i32) (result i32) i32.const 1024)
      (func (export "plugbay_free") (param i32 i32))
      (func (export "plugbay_init") (param i32 i32) (result i64) i64.const 0)
      (func (export "plugbay_call") (param i32 i32 i32 i32) (result i64)
        i64.const 0x7fff000000000010))"""
    (root / "build" / "plugin.wasm").write_bytes(wasmtime.wat2wasm(wat))
    (root / "plugin.toml").write_text(
        'id = "acme.broken"\nversion = "1.0.0"\ntype = "utility"\nruntime = "wasm"\n'
        'entry = "build/plugin.wasm"\n[commands.go]\nreturns = "int"\n'
    )
    async with new_host(tmp_path) as host:
        with pytest.raises(
            PluginCrashed, match=r"broke the plugbay ABI in 'go'.*outside its memory"
        ):
            await host.call("acme.broken", "go")


async def test_a_plugin_that_is_not_built_says_how_to_build_it(tmp_path: Path) -> None:
    directory = textstats(tmp_path / "plugins")
    (directory / "build" / "plugin.wasm").unlink()
    async with new_host(tmp_path) as host:
        rec = host.plugin(PLUGIN)
        assert rec.state == "failed"
        assert "does not exist" in (rec.reason or "") and "plugbay build" in (rec.reason or "")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[commands.go]\nparams = { n = "banana" }\nreturns = "int"\n', "'banana' is not a type"),
        ('[commands.go]\nparams = { n = "int" }\n', "declares no result type"),
        ('[commands.go]\nparams = { class = "int" }\nreturns = "int"\n', "not a parameter name"),
        ("", "declares no commands"),
    ],
)
def test_a_wasm_manifest_mistake_is_a_clear_error(body: str, message: str) -> None:
    text = (
        'id = "acme.w"\nversion = "1.0.0"\ntype = "utility"\nruntime = "wasm"\n'
        f'entry = "build/w.wasm"\n{body}'
    )
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text)
    with pytest.raises(ManifestError, match=r"must be a \.wasm path inside the plugin"):
        parse_manifest(text.replace("build/w.wasm", "../w.wasm"))


def test_declared_types_are_python_types() -> None:
    assert parse_type("list[dict[str, int]]") == list[dict[str, int]]
    assert parse_type("str | None") == (str | None)
    assert parse_type("tuple[int, ...]") == tuple[int, ...]
    for bad in ("os.system", "__import__('os')", "dict[int, str]", "list[int, str]"):
        with pytest.raises(ValueError, match=r"type|dict keys|takes"):
            parse_type(bad)


def test_plugbay_new_and_build_make_a_plugin_that_validates(tmp_path: Path) -> None:
    plugbay = [sys.executable, "-m", "plugbay.cli"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*plugbay, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    made = run("new", "acme.fresh", "--lang", "c")
    assert made.returncode == 0, made.stderr
    built = run("build", "acme-fresh")
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "acme-fresh" / "build" / "plugin.wasm").stat().st_size > 1000
    checked = run("validate", "acme-fresh", "--plugins", ".")
    assert checked.returncode == 0, checked.stdout
    assert "word_count(text: str) -> int" in checked.stdout
    called = run("call", "--plugins", ".", "--state", "st", "acme.fresh", "shout", "text=hi")
    assert called.returncode == 0 and called.stdout.strip() == "HI!", called.stderr
    wrong = run("call", "--plugins", ".", "--state", "st", "acme.fresh", "add", "a=x", "b=2")
    assert wrong.returncode == 1 and "parameter 'a' expects int" in wrong.stderr
    (tmp_path / "acme-fresh" / "src" / "plugin.c").write_text("int broken(")
    failed = run("build", "acme-fresh")
    assert failed.returncode != 0 and "did not compile" in failed.stdout + failed.stderr


async def test_versions_side_by_side_upgrade_and_rollback(tmp_path: Path) -> None:
    textstats(tmp_path / "plugins")
    louder = _wasm.template_source().replace(
        "pb_put(&joined, suffix, m);",
        "pb_put(&joined, suffix, m);\n    pb_put(&joined, suffix, m);",
    )
    newer = _wasm.write_plugin(
        tmp_path / "elsewhere" / "textstats", PLUGIN, louder, _wasm.template_manifest(), "1.1.0"
    )
    async with new_host(tmp_path, probation=0.1) as host:
        await host.call(PLUGIN, "remember", key="k", value="kept")
        host.install(newer)
        await host.upgrade(PLUGIN)
        assert str(host.plugin(PLUGIN).version) == "1.1.0"
        assert await host.call(PLUGIN, "shout", text="a") == "A!!"
        assert await host.call(PLUGIN, "recall", key="k") == "kept"  # its data directory
        await host.rollback(PLUGIN)
        assert str(host.plugin(PLUGIN).version) == "1.0.0"
        assert await host.call(PLUGIN, "shout", text="a") == "A!"


async def test_its_host_requests_reach_what_it_declared_as_itself(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    attacker = (HERE / "wasm_plugins" / "attacker.c").read_text()
    commands = (HERE / "wasm_plugins" / "attacker.toml").read_text()
    _wasm.write_plugin(
        root / "caller", "acme.caller", attacker,
        commands + '\n[dependencies]\n"acme.helper" = "^1"\n',
    )  # fmt: skip
    helper = root / "helper"
    helper.mkdir()
    (helper / "plugin.toml").write_text(
        'id = "acme.helper"\nversion = "1.2.0"\ntype = "utility"\nentry = "main:P"\n'
    )
    (helper / "main.py").write_text(
        "import asyncio\nfrom plugbay import UtilityPlugin, command\n\nclass P(UtilityPlugin):\n"
        "    @command\n    def double(self, n: int) -> int:\n        return 2 * n\n"
        "    @command\n    async def nap(self) -> None:\n        await asyncio.sleep(60)\n"
    )
    async with new_host(tmp_path, inline=["acme.helper"]) as host:
        ask = '{"plugin": "acme.helper", "command": "double", "params": {"n": 21}}'
        assert await host.call("acme.caller", "ask", via="service", request=ask) == 42
        # an event is a plugin event it declared, never a host event: a host event's name
        # is refused, as a denial of its own
        forged = '{"name": "security.denied", "data": {"plugin": "acme.helper"}}'
        with pytest.raises(PermissionDenied, match=r"emitting the event 'security\.denied'") as no:
            await host.call("acme.caller", "ask", via="event", request=forged)
        assert no.value.plugin == "acme.caller"
        assert host.manager.plugin_events.emitted[("acme.caller", "security.denied")] == 0
        assert await host.call("acme.caller", "ask", via="storage", request='{"op": "keys"}') == []
        # a call waiting on the host is still cut at its deadline (2 s), and serves on
        started = time.monotonic()
        nap = '{"plugin": "acme.helper", "command": "nap", "params": {}}'
        with pytest.raises(PluginTimeout):
            await host.call("acme.caller", "ask", via="service", request=nap)
        assert time.monotonic() - started < 5
        assert await host.call("acme.caller", "ping") == "pong"


CALLER = """
from typing import Any

from api import AcmeTextstatsApi


async def use(host: Any) -> int:
    stats: AcmeTextstatsApi = host.proxy("acme.textstats")
    return await stats.word_count(text={text})
"""


@pytest.mark.slow
async def test_a_typed_proxy_lets_mypy_check_a_callers_code(tmp_path: Path) -> None:
    from plugbay.model.manifest import load_manifest

    directory = textstats(tmp_path / "plugins")
    declared = load_manifest(directory).wasm
    (tmp_path / "api.py").write_text(declared.protocol())  # what plugbay build writes

    def mypy(text: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "caller.py").write_text(CALLER.format(text=text))
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "caller.py", "api.py"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

    wrong = mypy("3")
    assert wrong.returncode == 1
    assert 'Argument "text" to "word_count" of "AcmeTextstatsApi" has incompatible type "int"' in (
        wrong.stdout
    )
    right = mypy('"a b"')
    assert right.returncode == 0, right.stdout
    async with new_host(tmp_path) as host:
        stats = host.proxy(PLUGIN)
        assert await stats.word_count(text="a b") == 2
        assert await stats.shout(text="x") == "X!"
