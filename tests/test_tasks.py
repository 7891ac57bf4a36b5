"""``context.tasks``: supervised background work, inline and in a sandboxed worker.

Real plugins on a real host: a task that fails is restarted with a backoff and
counted, one that keeps failing stops as ``failed``, every task is cancelled at
cleanup (and one that refuses does not hold the host), and operators see the
tasks in ``plugbay info`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from plugbay.cli.tasks import task_rows
from plugbay.runtime.host import Host
from tests._waiting import until
from tests.conftest import PluginFactory

WORKER = """
import asyncio
from plugbay import PluginContext, UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        self.failures = 0
        context.tasks.spawn(self.flaky, name="flaky", backoff=0.01)
        context.tasks.spawn(self.ticker, name="ticker")
        context.tasks.spawn(self.doomed, name="doomed", backoff=0.01, max_restarts=2)

    async def flaky(self) -> None:
        self.failures += 1
        if self.failures <= 2:
            raise RuntimeError(f"failure {self.failures}")
        self.context.storage.set("flaky", "steady")
        await asyncio.Event().wait()

    async def ticker(self) -> None:
        try:
            n = 0
            while True:
                n += 1
                self.context.storage.set("ticks", n)
                await asyncio.sleep(0.01)
        finally:  # cancelled at cleanup: the last word is kept
            self.context.storage.set("ticker", "stopped")

    async def doomed(self) -> None:
        raise ValueError("never works")

    @command
    def tasks(self) -> list[dict[str, str | int | None]]:
        return [
            {"name": t.name, "state": t.state, "restarts": t.restarts, "error": t.last_error}
            for t in self.context.tasks.info()
        ]

    @command
    def ticks(self) -> int:
        return self.context.storage.get("ticks", 0, type=int)

    @command
    def stored(self, key: str) -> str | None:
        return self.context.storage.get(key, type=str)
"""

STUBBORN = """
import asyncio
from plugbay import PluginContext, UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        context.tasks.spawn(self.refuse, name="refuse")

    async def refuse(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass  # a task that will not stop

    @command
    def ping(self) -> str:
        return "pong"
"""


@pytest.fixture(params=["inline", "process"])
def isolation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_host(plugins: PluginFactory, tmp_path: Path, isolation: str) -> Host:
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=20,
        cleanup_timeout=2.0,
        inline=["*"] if isolation == "inline" else [],
    )


async def test_tasks_are_supervised_seen_and_cancelled_at_cleanup(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    plugins("acme.busy", WORKER, extra=f'isolation = "{isolation}"\n')
    plugins("acme.ok", extra=f'isolation = "{isolation}"\n')
    async with make_host(plugins, tmp_path, isolation) as host:

        async def settled() -> list[dict[str, Any]] | None:
            tasks: list[dict[str, Any]] = await host.call("acme.busy", "tasks")
            states = {t["name"]: t["state"] for t in tasks}
            done = states == {"doomed": "failed", "flaky": "running", "ticker": "running"}
            return tasks if done and tasks[1]["restarts"] == 2 else None

        tasks = await until(settled, "flaky restarted twice and doomed failed")
        assert tasks == [
            {
                "name": "doomed",
                "state": "failed",
                "restarts": 2,
                "error": "ValueError: never works",
            },
            {
                "name": "flaky",
                "state": "running",
                "restarts": 2,
                "error": "RuntimeError: failure 2",
            },
            {"name": "ticker", "state": "running", "restarts": 0, "error": None},
        ]
        # the ticker really runs in the background, between calls
        first = await host.call("acme.busy", "ticks")
        await until(lambda: host.call("acme.busy", "ticks"), "ticks")
        await until(
            lambda: _gt(host.call("acme.busy", "ticks"), first), "the ticker moves on its own"
        )

        # operators see them: plugbay info (from the plugin's metrics) and /metrics
        def shown() -> list[tuple[str, str]]:
            rows = task_rows(host.info("acme.busy"))
            # both from one heartbeat's figures: flaky's last restart and doomed's failure
            # happen within the same few milliseconds, and a heartbeat may fall between them
            said = " ".join(v for _, v in rows)
            both = "flaky running, 2 restarts" in said and "doomed failed" in said
            return rows if both else []

        rows = await until(shown, "the tasks in plugbay info")
        assert ("tasks", "doomed failed, 2 restarts") in rows
        assert ("", "ticker running, 0 restarts") in rows
        text = host.render_metrics().decode()
        assert 'plugbay_custom_tasks{plugin="acme.busy",state="running",version="1.0.0"} 2.0' in (
            text
        ), text
        assert 'plugbay_custom_task_restarts_total{plugin="acme.busy",task="flaky"' in text

        await host.unload("acme.busy")
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"
    # cancelled at cleanup: the ticker's last write is in its store, read back by the next
    # host (a sandboxed plugin's data directory is its storage image, mounted while it runs)
    async with make_host(plugins, tmp_path, isolation) as host:
        assert await host.call("acme.busy", "stored", key="ticker") == "stopped"
        assert (
            await until(lambda: host.call("acme.busy", "stored", key="flaky"), "flaky steady again")
            == "steady"
        )


async def _gt(value: Any, than: int) -> bool:
    return bool(await value > than)


async def test_a_task_that_refuses_to_stop_does_not_hold_the_host(
    plugins: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # In a worker only: inline, such a task lives on in the host's own loop (reported,
    # like any misbehaving trusted code; the worker is the place for code not trusted).
    isolation = "process"
    plugins("acme.stubborn", STUBBORN, extra=f'isolation = "{isolation}"\n')
    plugins("acme.ok", extra=f'isolation = "{isolation}"\n')
    caplog.set_level(logging.WARNING)
    async with make_host(plugins, tmp_path, isolation) as host:
        assert await host.call("acme.stubborn", "ping") == "pong"
        async with asyncio.timeout(30):  # a guard against a hang, not a timed assertion
            await host.unload("acme.stubborn")
        assert str(host.plugin("acme.stubborn").state) != "active"
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"
    assert "did not stop within" in caplog.text  # the worker's log, forwarded


async def test_a_bad_spawn_is_a_clear_error() -> None:
    from plugbay import PlugbayError
    from plugbay.api._tasks import Tasks

    tasks = Tasks("acme.unit")
    with pytest.raises(PlugbayError, match="pass the method itself"):
        tasks.spawn(42, name="x")  # type: ignore[arg-type]
    gate = asyncio.Event()
    tasks.spawn(gate.wait, name="wait")
    with pytest.raises(PlugbayError, match="already running"):
        tasks.spawn(gate.wait, name="wait")
    assert await tasks.close(1.0) == []
    assert [t.state for t in tasks.info()] == ["cancelled"]
    with pytest.raises(PlugbayError, match="being cleaned up"):
        tasks.spawn(gate.wait, name="late")


PLAIN_DEF = """
from plugbay import PluginContext, UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        context.tasks.spawn(self.sweep, name="sweep", backoff=0.01, max_restarts=3)

    def sweep(self) -> None:  # a plain def: a mistake the author must be told of
        self.context.storage.set("sweeps", self.context.storage.get("sweeps", 0) + 1)

    @command
    def tasks(self) -> list[dict[str, str | int | None]]:
        return [
            {"name": t.name, "state": t.state, "restarts": t.restarts, "error": t.last_error}
            for t in self.context.tasks.info()
        ]

    @command
    def sweeps(self) -> int:
        return self.context.storage.get("sweeps", 0, type=int)
"""


async def test_a_plain_def_task_fails_at_once_saying_it_needs_async_def(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    plugins("acme.plain", PLAIN_DEF, extra=f'isolation = "{isolation}"\n')
    async with make_host(plugins, tmp_path, isolation) as host:

        async def failed() -> list[dict[str, Any]] | None:
            tasks: list[dict[str, Any]] = await host.call("acme.plain", "tasks")
            return tasks if tasks[0]["state"] == "failed" else None

        [task] = await until(failed, "the plain def task to fail")
        # not restarted: running a plain def again would not make it a coroutine, and
        # each restart would run its body once more
        assert task["restarts"] == 0, task
        assert "'sweep' returned NoneType, not a coroutine" in task["error"]
        assert "async def" in task["error"]
        assert await host.call("acme.plain", "sweeps") == 1


DOOMED = """
from plugbay import PluginContext, UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        context.tasks.spawn(self.doomed, name="doomed", backoff=0.01, max_restarts=1)

    async def doomed(self) -> None:
        raise ValueError("never works")

    @command
    def ping(self) -> str:
        return "pong"
"""


async def test_a_failed_task_is_logged_with_the_line_that_raised(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    plugins("acme.doomed", DOOMED, extra=f'isolation = "{isolation}"\n')
    async with make_host(plugins, tmp_path, isolation) as host:

        def failed() -> list[dict[str, Any]]:
            return [r for r in host.logs("acme.doomed") if "'doomed' failed" in r["message"]]

        [record] = await until(failed, "the task's failure in the plugin's log")
        assert record["level"] == logging.ERROR
        assert "ValueError: never works" in record["message"]
        # the author reads where: the traceback names the task's own file and line
        trace = record["fields"]["exception"]
        assert 'main.py", line 9, in doomed' in trace, trace
        assert trace.rstrip().endswith("ValueError: never works")
        assert await host.call("acme.doomed", "ping") == "pong"
