"""Reload: swap a plugin for its new code while callers keep working, or keep the old."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay import PluginReloadError
from plugbay.isolation.loading import NAMESPACE
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

COUNTER = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    def __init__(self) -> None:
        self.count = 0

    def export_state(self) -> dict[str, int]:
        return {{"count": self.count}}

    def import_state(self, state: dict[str, int]) -> None:
        self.count = state["count"]

    @command
    def bump(self) -> int:
        self.count += 1
        return self.count

    @command
    async def slow(self) -> str:
        await asyncio.sleep(0.2)
        return "{label}"

    @command
    def label(self) -> str:
        return "{label}"
"""


def write(directory: Path, label: str, version: str = "1.0.0") -> None:
    (directory / "main.py").write_text(COUNTER.format(label=label))
    manifest = directory / "plugin.toml"
    manifest.write_text(
        manifest.read_text().replace(manifest.read_text().split("\n")[1], f'version = "{version}"')
    )


@pytest.fixture
def counter(plugins: PluginFactory) -> Path:
    directory = plugins("acme.counter", COUNTER.format(label="v1"), dirname="counter")
    plugins("acme.ok")
    return directory


async def test_a_counter_survives_a_reload(counter: Path, make_host: Callable[..., Host]) -> None:
    async with make_host() as host:
        assert [await host.call("acme.counter", "bump") for _ in range(3)] == [1, 2, 3]
        write(counter, "v2", "1.1.0")
        rec = await host.reload("acme.counter")
        assert rec.version == "1.1.0"
        assert await host.call("acme.counter", "label") == "v2"
        assert await host.call("acme.counter", "bump") == 4
        assert host.state is not None
        event = host.state.history("acme.counter")[0]
        assert (event.action, event.result) == ("reload", "ok")
        assert (event.details["from"], event.details["to"]) == ("1.0.0", "1.1.0")


async def test_calls_running_during_a_reload_finish_on_the_old_version(
    counter: Path, make_host: Callable[..., Host]
) -> None:
    async with make_host() as host:
        running = asyncio.ensure_future(host.call("acme.counter", "slow"))
        await asyncio.sleep(0.05)
        write(counter, "v2", "1.0.1")
        await host.reload("acme.counter")
        assert await running == "v1"  # drained on the old version
        assert await host.call("acme.counter", "slow") == "v2"


async def test_no_caller_sees_an_error_across_many_reloads(
    counter: Path, make_host: Callable[..., Host]
) -> None:
    async with make_host() as host:
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def caller() -> None:
            while not stop.is_set():
                try:
                    await host.call("acme.counter", "label")
                except BaseException as exc:
                    failures.append(exc)
                await asyncio.sleep(0)

        callers = [asyncio.ensure_future(caller()) for _ in range(4)]
        for i in range(20):
            write(counter, f"v{i + 2}", f"1.0.{i + 1}")
            await host.reload("acme.counter")
        stop.set()
        await asyncio.gather(*callers)
        assert failures == []
        assert await host.call("acme.counter", "label") == "v21"


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: (d / "main.py").write_text("def broken(:\n"), "syntax error in 'main'"),
        (
            lambda d: (d / "main.py").write_text("import nope_not_here\n"),
            "no module named 'nope_not_here'",
        ),
        (lambda d: (d / "plugin.toml").write_text("id = \n"), "the manifest is not valid TOML"),
        (lambda d: write(d, "v0", "0.9.0"), "the version went backwards, from 1.0.0 to 0.9.0"),
        (
            lambda d: (d / "main.py").write_text(
                COUNTER.format(label="v2").replace(
                    'self.count = state["count"]', "raise KeyError('count')"
                )
            ),
            "KeyError",
        ),
        (
            lambda d: (d / "main.py").write_text(
                COUNTER.format(label="v2").replace(
                    "    def __init__",
                    "    async def initialize(self, context):\n        raise RuntimeError('db down')\n\n    def __init__",
                )
            ),
            "initialize raised RuntimeError: db down",
        ),
    ],
)
async def test_a_broken_new_version_leaves_the_old_one_serving(
    counter: Path, make_host: Callable[..., Host], break_it: Callable[[Path], object], expected: str
) -> None:
    async with make_host() as host:
        await host.call("acme.counter", "bump")
        break_it(counter)
        with pytest.raises(PluginReloadError) as err:
            await host.reload("acme.counter")
        assert str(err.value).startswith(
            "plugin 'acme.counter': reload failed; 1.0.0 keeps serving: "
        )
        assert expected in str(err.value)
        assert await host.call("acme.counter", "label") == "v1"
        assert await host.call("acme.counter", "bump") == 2
        assert str(host.plugin("acme.counter").state) == "active"
        assert host.state is not None
        assert host.state.history("acme.counter")[0].result == "failed"


async def test_reloads_leave_no_modules_behind(
    counter: Path, make_host: Callable[..., Host]
) -> None:
    async with make_host() as host:
        for i in range(3):
            write(counter, f"w{i}", f"1.0.{i + 1}")
            await host.reload("acme.counter")
        gc.collect()
        before = len(sys.modules)
        for i in range(50):
            write(counter, f"x{i}", f"1.1.{i}")
            await host.reload("acme.counter")
        gc.collect()
        assert len(sys.modules) == before
        assert len([m for m in sys.modules if m.startswith(NAMESPACE) and "acme_counter" in m]) == 2


async def test_a_sandboxed_plugin_reloads_into_a_new_worker(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    directory = plugins(
        "acme.worker", COUNTER.format(label="v1"), dirname="worker", extra='isolation = "process"\n'
    )
    async with make_host(init_timeout=20) as host:
        first = host.plugin("acme.worker").handle
        running = asyncio.ensure_future(host.call("acme.worker", "slow"))
        await asyncio.sleep(0.05)
        write(directory, "v2", "1.0.1")
        await host.reload("acme.worker")
        assert await running == "v1"
        assert await host.call("acme.worker", "label") == "v2"
        assert host.plugin("acme.worker").handle is not first
        assert getattr(host.plugin("acme.worker").handle, "pid", None) != getattr(
            first, "pid", None
        )
