"""The manager, swapper, supervisor and monitor against the fake backend
(``plugbay.isolation._fake``): crashes, hangs, slow calls, leaks and failed state
exports on demand, without real workers and without sleeping for the host's sake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay import PluginReloadError
from plugbay.api.errors import ParameterError, PluginCrashed, PluginTimeout
from plugbay.isolation._fake import FakeBackend, FakeHandle
from plugbay.runtime.host import Host
from tests._waiting import until
from tests.conftest import PluginFactory

COUNTER = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    def __init__(self) -> None:
        self.count = 0
        self.imported = False

    def export_state(self) -> dict[str, int]:
        return {{"count": self.count}}

    def import_state(self, state: dict[str, int]) -> None:
        self.count = state["count"]
        self.imported = True

    @command
    def bump(self) -> int:
        self.count += 1
        return self.count

    @command
    def add(self, a: int, b: int) -> int:
        return a + b

    @command
    def label(self) -> str:
        return "{label}"

    @command
    def was_imported(self) -> bool:
        return self.imported
{extra}
"""

HEALTH = """
    @command
    def health(self) -> bool:
        return True
"""


def counter(label: str, extra: str = "") -> str:
    return COUNTER.format(label=label, extra=extra)


def new_version(directory: Path, label: str, version: str, extra: str = "") -> None:
    (directory / "main.py").write_text(counter(label, extra))
    manifest = directory / "plugin.toml"
    lines = [
        f'version = "{version}"' if line.startswith("version") else line
        for line in manifest.read_text().splitlines()
    ]
    manifest.write_text("\n".join(lines) + "\n")


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def on_fake(make_host: Callable[..., Host], fake: FakeBackend) -> Callable[..., Host]:
    """A host whose plugins all run on the fake backend."""

    def make(**kwargs: Any) -> Host:
        kwargs.setdefault("monitor", {"interval": 3600})  # ticks only when a test asks
        host = make_host(**kwargs)
        host.manager.backends["inline"] = fake
        host.manager.backends["process"] = fake
        return host

    return make


# ---------------------------------------------------------------------- the manager


async def test_calls_on_the_fake_are_checked_timed_and_counted_by_the_manager(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    plugins("acme.counter", counter("v1"))
    async with on_fake() as host:
        assert isinstance(host.plugin("acme.counter").handle, FakeHandle)
        assert await host.call("acme.counter", "add", a=2, b=3) == 5
        with pytest.raises(ParameterError):
            await host.call("acme.counter", "add", a="two", b=3)
        stats = host.plugin("acme.counter").metrics
        assert stats is not None
        add = stats.commands["add"]
        # a caller's bad parameters are not the plugin's error
        assert (add.started, add.errors_by_type["ParameterError"]) == (2, 0)
    assert fake.closed and all(h.released for h in fake.handles)


async def test_a_hanging_plugin_times_out_and_its_neighbour_keeps_answering(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    plugins("acme.stuck", counter("stuck"), extra="[resources]\ntimeout = 0.05\n")
    plugins("acme.fine", counter("fine"))
    async with on_fake() as host:
        fake.faults("acme.stuck").hang = True
        with pytest.raises(PluginTimeout, match=r"did not finish within 0\.05 s"):
            await host.call("acme.stuck", "bump")
        assert await host.call("acme.fine", "label") == "fine"
        assert fake.live("acme.stuck").running() == []  # the timed-out call was cancelled
        fake.faults("acme.stuck").unhang()
        assert await host.call("acme.stuck", "bump") == 1  # the hung call never ran its body


# ---------------------------------------------------------------------- the supervisor


async def test_a_crash_fails_calls_in_flight_then_restarts_with_backoff_then_gives_up(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    plugins("acme.counter", counter("v1"))
    async with on_fake(restart_backoff=0.01, max_crashes=3, crash_window=60) as host:
        faults = fake.faults("acme.counter")
        faults.hang = True
        in_flight = asyncio.create_task(host.call("acme.counter", "bump"))
        await until(lambda: fake.live("acme.counter").running() != [], "the call to start")
        first = fake.live("acme.counter")
        fake.crash("acme.counter")
        with pytest.raises(PluginCrashed):
            await in_flight  # failed at once, not at its timeout
        faults.unhang()
        assert host.plugin("acme.counter").state == "restarting"

        for crashes in (1, 2):
            await until(lambda: host.plugin("acme.counter").state == "active", "a restart")
            assert fake.live("acme.counter") is not first
            assert await host.call("acme.counter", "bump") == 1  # a fresh instance serves
            if crashes == 2:
                break
            fake.crash("acme.counter")
        fake.crash("acme.counter")  # the third within the window

        rec = host.plugin("acme.counter")
        assert rec.state == "failed"
        assert (
            rec.reason is not None
            and "gave up restarting it after 3 crashes within 60 s" in rec.reason
        )
        assert host.state is not None
        restarts = [e.reason for e in host.state.history("acme.counter") if e.action == "restart"]
        assert restarts == ["after 0.02 s", "after 0.01 s"]  # newest first: the backoff doubled
        assert host.state.is_enabled("acme.counter") is True  # the next start tries it again
        with pytest.raises(Exception, match="failed while it served"):
            await host.call("acme.counter", "bump")


async def test_a_call_waits_across_restarts_that_find_no_node_until_one_serves(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    """A call made while a plugin restarts waits for it up to the call timeout, across the
    tries that find no node yet (each schedules the next before it ends), not only the
    first: its Ray node may take several tries to come back."""
    plugins("acme.counter", counter("v1"))
    async with on_fake(restart_backoff=0.01, max_crashes=10, crash_window=60) as host:
        faults = fake.faults("acme.counter")
        faults.not_placed = 3  # the first three restarts find no node
        fake.crash("acme.counter")
        assert host.plugin("acme.counter").state == "restarting"
        assert await host.call("acme.counter", "bump") == 1
        assert faults.not_placed == 0
        assert host.plugin("acme.counter").state == "active"


# ---------------------------------------------------------------------- the swapper


async def test_a_swap_on_the_fake_carries_state_over_with_no_failed_call(
    plugins: PluginFactory, on_fake: Callable[..., Host]
) -> None:
    directory = plugins("acme.counter", counter("v1"), dirname="counter")
    async with on_fake(probation=0.05) as host:
        stop = asyncio.Event()
        answers: list[int] = []
        failures: list[BaseException] = []

        async def caller() -> None:
            while not stop.is_set():
                try:
                    answers.append(await host.call("acme.counter", "bump"))
                except Exception as exc:
                    failures.append(exc)
                await asyncio.sleep(0)

        callers = [asyncio.create_task(caller()) for _ in range(4)]
        await until(lambda: len(answers) > 20, "calls before the swap")
        new_version(directory, "v2", "1.1.0")
        await host.reload("acme.counter")
        before = len(answers)
        await until(lambda: len(answers) > before + 20, "calls after the swap")
        stop.set()
        await asyncio.gather(*callers)
        assert failures == []
        assert await host.call("acme.counter", "label") == "v2"
        assert await host.call("acme.counter", "was_imported") is True
        # the count went on from the old version's, not from zero (calls the old version
        # answered between its export and the switch are the durability issue's to keep)
        assert await host.call("acme.counter", "bump") > before


async def test_a_failed_state_export_leaves_the_old_version_serving(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    directory = plugins("acme.counter", counter("v1"), dirname="counter")
    async with on_fake() as host:
        assert await host.call("acme.counter", "bump") == 1
        fake.faults("acme.counter").fail_export = True
        new_version(directory, "v2", "1.1.0")
        with pytest.raises(PluginReloadError, match=r"export_state of 1\.0\.0 failed"):
            await host.reload("acme.counter")
        assert await host.call("acme.counter", "label") == "v1"
        assert await host.call("acme.counter", "bump") == 2
        assert [h.released for h in fake.handles] == [False, True]  # the new one was let go


async def test_a_version_that_crashes_in_probation_is_rolled_back_without_a_restart(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    directory = plugins("acme.counter", counter("v1"), dirname="counter")
    async with on_fake(probation=0.05, restart_backoff=0.01) as host:
        await host.call("acme.counter", "bump")
        new_version(directory, "v2", "1.1.0", HEALTH)
        fake.faults("acme.counter").crash_on = {"health"}
        with pytest.raises(PluginReloadError, match=r"failed its probation; 1\.0\.0 keeps serving"):
            await host.reload("acme.counter")
        rec = host.plugin("acme.counter")
        assert (rec.state, rec.version, rec.crashes) == ("active", "1.0.0", [])
        assert await host.call("acme.counter", "bump") == 2


async def test_a_retired_version_dying_is_not_the_plugins_crash(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    directory = plugins("acme.counter", counter("v1"), dirname="counter")
    async with on_fake(probation=0.0) as host:
        old = fake.live("acme.counter")
        new_version(directory, "v2", "1.1.0")
        await host.reload("acme.counter")
        old.crash()  # the retired worker dies late
        rec = host.plugin("acme.counter")
        assert (rec.state, rec.version, rec.crashes) == ("active", "1.1.0", [])
        assert await host.call("acme.counter", "label") == "v2"


# ---------------------------------------------------------------------- the monitor


async def tick_until(
    host: Host, rule: str, poke: Callable[[], Awaitable[Any]] | None = None
) -> Any:
    assert host.monitor is not None
    end = time.monotonic() + 5
    while True:
        if poke is not None:
            await poke()
        await host.monitor.tick()
        firing = [a for a in host.monitor.alerts.active("acme.counter") if a.rule == rule]
        if firing:
            return firing[0]
        if time.monotonic() > end:
            raise AssertionError(f"alert {rule} never fired")


async def test_a_leaking_fake_fires_the_memory_growth_alert(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    plugins("acme.counter", counter("v1"))
    rules = {"memory-growth": {"min-samples": 4, "min-growth": 48 * 2**20}}
    async with on_fake(monitor={"interval": 3600, "alerts": rules}) as host:
        assert host.monitor is not None
        await host.monitor.tick()
        assert host.monitor.alerts.active("acme.counter") == []  # one sample: no trend
        fake.faults("acme.counter").leak_bytes = 20 * 2**20
        alert = await tick_until(host, "memory-growth")
        assert "a leak?" in alert.message
        usage, _ = host.monitor.usage_of("acme.counter")
        assert usage is not None and usage["rss_bytes"] > 32 * 2**20 + 48 * 2**20


async def test_a_slow_fake_fires_the_latency_alert(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    plugins("acme.counter", counter("v1"), extra="[resources]\ntimeout = 0.2\n")
    rules = {"latency": {"fraction": 0.1, "min-calls": 3}}
    async with on_fake(monitor={"interval": 3600, "alerts": rules}) as host:
        assert host.monitor is not None
        for _ in range(3):
            await host.call("acme.counter", "bump")
        await host.monitor.tick()
        assert host.monitor.alerts.active("acme.counter") == []  # fast calls: quiet
        fake.faults("acme.counter").slow = 0.03

        async def three_calls() -> None:
            for _ in range(3):
                await host.call("acme.counter", "bump")

        alert = await tick_until(host, "latency", three_calls)
        assert alert.details["command"] == "bump"


async def test_a_hung_call_on_the_fake_fires_the_hung_alert_with_its_stack(
    plugins: PluginFactory, on_fake: Callable[..., Host], fake: FakeBackend
) -> None:
    plugins("acme.counter", counter("v1"))
    rules = {"hung": {"after": 0.01}}
    async with on_fake(monitor={"interval": 3600, "alerts": rules}) as host:
        fake.faults("acme.counter").hang = True
        call = asyncio.create_task(host.call("acme.counter", "bump"))
        alert = await tick_until(host, "hung")
        assert alert.details["command"] == "bump"
        assert "fake worker of acme.counter: running bump" in alert.details["stack"]
        fake.faults("acme.counter").unhang()
        assert await call == 1


# ---------------------------------------------------------------------- the contract's defaults


async def test_the_contracts_defaults_hold_for_a_backend_that_overrides_nothing(
    plugins: PluginFactory,
) -> None:
    """A handle that implements only the abstract members still answers every member the
    host reads, with the documented default; profiling a plugin that does not run in the
    host is refused with NotSupported, never an AttributeError."""
    from plugbay.api import CommandSpec, PluginContext
    from plugbay.isolation.base import NotSupported, PluginHandle
    from plugbay.model.manifest import load_manifest

    class Remote(PluginHandle):
        def __init__(self) -> None:
            self.manifest = load_manifest(plugins("acme.remote"))
            self.commands: dict[str, CommandSpec] = {}
            self.instance = None

        async def initialize(self, context: PluginContext, timeout: float) -> None: ...
        async def call(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any: ...
        async def cleanup(self, timeout: float) -> None: ...
        def release(self) -> None: ...

    handle = Remote()
    assert (handle.isolated, handle.pid, list(handle.layers)) == (False, None, [])
    assert (handle.usage(), handle.running(), handle.alive(), handle.dump_stacks()) == (
        None, [], None, None,
    )  # fmt: skip
    assert await handle.export_state(1.0) == (False, None)
    assert await handle.import_state({"n": 1}, 1.0) is False
    with pytest.raises(NotSupported, match="cannot profile a call") as refused:
        await handle.profile(CommandSpec.__new__(CommandSpec), {}, 1.0)
    assert refused.value.plugin == "acme.remote"

    class Incomplete(PluginHandle):  # no release(): refused when made, not when first used
        async def initialize(self, context: PluginContext, timeout: float) -> None: ...
        async def call(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any: ...
        async def cleanup(self, timeout: float) -> None: ...

    with pytest.raises(TypeError, match="release"):
        Incomplete()  # type: ignore[abstract]
