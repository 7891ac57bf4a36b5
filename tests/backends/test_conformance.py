"""The backend contract (``plugbay.isolation.base``), checked the same way on every
backend (``conftest.CASES``): typed calls, timeouts, cancellation, crashes, bounded
cleanup, a swap's handover, usage figures and security events. The process backend
runs real sandboxed worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest

from plugbay.api.errors import (
    ParameterError,
    PermissionDenied,
    PluginCallError,
    PluginCrashed,
    PluginTimeout,
    ResultTypeError,
)
from plugbay.isolation.base import PluginHandle
from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host
from tests.backends.conftest import Case
from tests.conftest import PluginFactory

PLUGIN = "acme.conform"

CODE = """
import asyncio
import os
import socket
import sys
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    def __init__(self) -> None:
        self.count = 0
        self.imported = False
        self.cancelled_calls = 0
        self.hang_on_cleanup = False

    def export_state(self) -> dict[str, int]:
        return {{"count": self.count}}

    def import_state(self, state: dict[str, int]) -> None:
        self.count = state["count"]
        self.imported = True

    async def cleanup(self) -> None:
        if self.hang_on_cleanup:
            await asyncio.sleep(3600)

    @command
    def add(self, a: int, b: int) -> int:
        return a + b

    @command
    def wrong_result(self) -> int:
        return "not a number"  # type: ignore[return-value]

    @command
    def bump(self) -> int:
        self.count += 1
        return self.count

    @command
    def label(self) -> str:
        return "{label}"

    @command
    def was_imported(self) -> bool:
        return self.imported

    @command
    async def wait(self, seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled_calls += 1
            raise
        return "done"

    @command
    def cancelled(self) -> int:
        return self.cancelled_calls

    @command
    def die(self) -> None:
        if self.context.environment.isolation == "process":
            os._exit(3)  # the worker process ends, as in a segfault or an OOM kill
        sys.exit(3)

    @command
    def hang_cleanup(self) -> None:
        self.hang_on_cleanup = True

    @command
    def dial(self, port: int) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return "connected"
"""

# no [resources] timeout: the host's call timeout applies (the timeout test sets it)
LIMITS = ""


def write(directory: Path, label: str, version: str, case: Case | None = None) -> None:
    if case is not None and case.write is not None:
        case.write(directory, label, version)
        return
    (directory / "main.py").write_text(CODE.format(label=label))
    (directory / "plugin.toml").write_text(
        f'id = "{PLUGIN}"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n' + LIMITS
    )


@pytest.fixture
def conform(case: Case, plugins: PluginFactory) -> Path:
    directory = plugins.root / "conform"
    directory.mkdir(parents=True)
    write(directory, "v1", "1.0.0", case)
    return directory


@contextlib.asynccontextmanager
async def running(make: Callable[..., Host], **options: object) -> AsyncIterator[Host]:
    host = make(**options)
    async with host:
        rec = host.plugin(PLUGIN)
        assert rec.state == "active", rec.reason
        yield host


def handle_of(host: Host) -> PluginHandle:
    handle = host.plugin(PLUGIN).handle
    assert handle is not None
    return handle


async def until(check: Callable[[], object], what: str, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def saw_one_cancellation(host: Host) -> None:
    """The plugin's command saw ``CancelledError`` once (a worker hears of it through a
    frame, so a call right after may overtake it: asked again until it holds, bounded)."""
    counted: list[int] = []
    end = time.monotonic() + 10
    while not counted or counted[-1] != 1:
        assert time.monotonic() < end, f"the plugin never saw the cancellation: {counted}"
        if counted:
            await asyncio.sleep(0.01)
        counted.append(await host.call(PLUGIN, "cancelled"))


async def test_calls_are_typed_at_both_ends(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async with running(on_backend) as host:
        assert await host.call(PLUGIN, "add", a=2, b=3) == 5
        with pytest.raises(ParameterError) as bad:
            await host.call(PLUGIN, "add", a="two", b=3)
        assert bad.value.plugin == PLUGIN
        with pytest.raises(ResultTypeError) as wrong:
            await host.call(PLUGIN, "wrong_result")
        assert wrong.value.plugin == PLUGIN
        assert await host.call(PLUGIN, "add", a=1, b=1) == 2  # still serving


async def test_many_calls_at_once_each_get_their_own_answer(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    """``host.call_many``: every call checked and counted as ``host.call`` does one; a
    bad call fails alone, in its place, and the plugin serves on."""
    async with running(on_backend) as host:
        sums = await host.call_many(PLUGIN, "add", [{"a": i, "b": i} for i in range(200)])
        assert sums == [2 * i for i in range(200)]
        mixed = await host.call_many(PLUGIN, "add", [{"a": 1, "b": 2}, {"a": "x", "b": 1}, {}])
        assert mixed[0] == 3
        assert isinstance(mixed[1], ParameterError) and "'a'" in str(mixed[1])
        assert isinstance(mixed[2], ParameterError) and mixed[2].plugin == PLUGIN
        wrong = await host.call_many(PLUGIN, "wrong_result", [{}, {}])
        assert all(isinstance(w, ResultTypeError) and w.plugin == PLUGIN for w in wrong)
        assert await host.call_many(PLUGIN, "add", []) == []
        figures = host.info(PLUGIN)["metrics"]["commands"]
        assert figures["add"]["calls"] == 203  # the caller's bad parameters begin a call too
        assert figures["add"]["errors_by_type"] == {}  # ... and are not the plugin's errors
        assert figures["wrong_result"]["errors_by_type"] == {"ResultTypeError": 2}
        assert await host.call(PLUGIN, "add", a=2, b=3) == 5  # still serving


async def test_a_call_of_a_batch_past_its_timeout_fails_alone(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async with running(on_backend, call_timeout=0.3) as host:
        started = time.monotonic()
        # the quick one first: a backend that runs one call at a time (Wasm) queues the next
        quick, late = await host.call_many(PLUGIN, "wait", [{"seconds": 0.0}, {"seconds": 30.0}])
        assert time.monotonic() - started < 5  # cut at its bound
        assert isinstance(late, PluginTimeout) and quick == "done"
        await until(lambda: handle_of(host).running() == [], "the call to be gone")
        figures = host.info(PLUGIN)["metrics"]["commands"]["wait"]
        assert figures["errors_by_type"] == {"PluginTimeout": 1}
        assert await host.call(PLUGIN, "add", a=2, b=2) == 4


async def test_a_call_past_its_timeout_is_cancelled_where_it_runs(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async with running(on_backend, call_timeout=0.3) as host:
        started = time.monotonic()
        with pytest.raises(PluginTimeout, match=r"did not finish within"):
            await host.manager.call(PLUGIN, "wait", {"seconds": 30.0})
        assert time.monotonic() - started < 5  # cut at its bound, not at the command's end
        # the plugin's coroutine was cancelled (not left running), and it serves on
        await until(lambda: handle_of(host).running() == [], "the call to be gone")
        if case.no_unwind is None:
            await saw_one_cancellation(host)
        assert await host.call(PLUGIN, "add", a=2, b=2) == 4


async def test_the_policys_default_timeout_bounds_a_call_and_its_hint_names_it(
    case: Case, conform: Path, on_backend: Callable[..., Host], tmp_path: Path
) -> None:
    """``[policy.defaults] timeout`` bounds the calls of a plugin whose manifest sets none,
    on every backend (docs/operators.md, Limits): a 3 s call is cut at 0.5 s."""
    options: dict[str, object] = {}
    policy = case.options.get("policy")
    if isinstance(policy, IsolationPolicy):  # Ray: the case's policy, given to the Host
        defaults = {**policy.defaults, "timeout": 0.5}
        options["policy"] = dataclasses.replace(policy, defaults=defaults)
    else:  # the host config file, as plugbay run reads it
        config = tmp_path / "plugbay.toml"
        config.write_text("[policy.defaults]\ntimeout = 0.5\n")
        options["config_file"] = config
    async with running(on_backend, **options) as host:
        with pytest.raises(PluginTimeout) as caught:
            await host.call(PLUGIN, "wait", seconds=3.0)
        assert "within 0.5 s" in caught.value.message
        assert "[policy.defaults] timeout = 0.5 in " in str(caught.value.hint)
        await until(lambda: handle_of(host).running() == [], "the call to be gone")
        assert await host.call(PLUGIN, "add", a=2, b=2) == 4


async def test_cancelling_the_caller_cancels_the_command(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async with running(on_backend) as host:
        call = asyncio.create_task(host.call(PLUGIN, "wait", seconds=30.0))
        await until(lambda: handle_of(host).running() != [], "the call to start")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        if case.no_unwind is not None:  # stopped where it ran, not finished: it answers at once
            started = time.monotonic()
            assert await host.call(PLUGIN, "add", a=1, b=1) == 2, case.no_unwind
            assert time.monotonic() - started < 5
        else:
            await saw_one_cancellation(host)
        assert handle_of(host).running() == []


async def test_cancelling_a_batch_cancels_its_commands(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async with running(on_backend) as host:
        batch = asyncio.create_task(host.call_many(PLUGIN, "wait", [{"seconds": 30.0}]))
        await until(lambda: handle_of(host).running() != [], "the call to start")
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        if case.no_unwind is None:
            await saw_one_cancellation(host)
        else:
            assert await host.call(PLUGIN, "add", a=1, b=1) == 2, case.no_unwind
        await until(lambda: handle_of(host).running() == [], "the call to be gone")
        assert host.manager._routes[PLUGIN].inflight == [0]  # nothing left for a swap to drain


async def test_a_crash_fails_the_call_and_the_plugin_is_restarted(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async with running(on_backend, restart_backoff=0.05) as host:
        first = handle_of(host)
        if case.cannot_crash is not None:
            # the documented alternative: the plugin's own error, the host serves on
            assert first.isolated is False, case.cannot_crash
            with pytest.raises(PluginCallError, match="SystemExit"):
                await host.call(PLUGIN, "die")
            assert host.plugin(PLUGIN).state == "active"
            assert await host.call(PLUGIN, "add", a=1, b=2) == 3
            return
        assert first.isolated is True
        with pytest.raises(PluginCrashed) as crashed:
            await host.call(PLUGIN, "die")
        assert crashed.value.plugin == PLUGIN
        assert host.plugin(PLUGIN).crashes  # the supervisor heard of it
        await until(
            lambda: host.plugin(PLUGIN).state == "active" and handle_of(host) is not first,
            "the restart",
        )
        assert await host.call(PLUGIN, "add", a=1, b=2) == 3
        assert host.state is not None
        actions = [e.action for e in host.state.history(PLUGIN)]
        assert "crash" in actions and "restart" in actions


async def test_a_cleanup_that_hangs_is_cut_at_its_bound(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async with running(on_backend, cleanup_timeout=0.3) as host:
        handle = handle_of(host)
        pid = handle.pid
        await host.call(PLUGIN, "hang_cleanup")
        started = time.monotonic()
        await host.manager.unload_plugin(PLUGIN)
        assert time.monotonic() - started < 3
        assert host.plugin(PLUGIN).state == "stopped"
        assert host.state is not None
        event = host.state.history(PLUGIN)[0]
        assert (event.action, event.result) == ("unload", "failed")
        assert "cleanup did not finish within 0.3 s; abandoned" in (event.reason or "")
        if pid is not None:  # a worker of its own: gone, not left behind
            await until(lambda: not _alive(pid), f"worker {pid} to end")
        handle.release()  # idempotent: a second release changes nothing


async def test_a_swap_hands_state_over_with_no_failed_call(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async with running(on_backend, probation=0.1) as host:
        stop = asyncio.Event()
        answers: list[int] = []
        failures: list[BaseException] = []

        async def caller() -> None:
            while not stop.is_set():
                try:
                    answers.append(await host.call(PLUGIN, "bump"))
                except Exception as exc:
                    failures.append(exc)
                await asyncio.sleep(0)

        callers = [asyncio.create_task(caller()) for _ in range(4)]
        await until(lambda: len(answers) > 20, "calls before the swap")
        write(conform, "v2", "1.1.0", case)
        await host.reload(PLUGIN)
        before = len(answers)
        await until(lambda: len(answers) > before + 20, "calls after the swap")
        stop.set()
        await asyncio.gather(*callers)
        assert failures == []
        assert await host.call(PLUGIN, "label") == "v2"
        assert await host.call(PLUGIN, "was_imported") is True
        assert await host.call(PLUGIN, "bump") > before  # went on from the old count


async def test_one_call_is_profiled_where_the_plugin_runs(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    from plugbay.runtime.profile import profile_call

    async with running(on_backend) as host:
        value, report = await profile_call(host.manager, PLUGIN, "add", {"a": 20, "b": 22})
        assert value == 42
        assert "function calls" in report  # cProfile's own report
        with pytest.raises(ParameterError):
            await profile_call(host.manager, PLUGIN, "add", {"a": "x", "b": 1})


async def test_usage_figures_where_the_backend_has_them(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async with running(on_backend) as host:
        usage = handle_of(host).usage()
        measured = host.manager.monitor_usage(PLUGIN)
        if case.no_usage is not None:
            assert usage is None, case.no_usage
            assert measured["shared"] is True and measured["pid"] == os.getpid()
            return
        assert usage is not None
        assert usage["rss_bytes"] > 0 and usage["threads"] >= 1
        assert measured["shared"] is False
        pid = handle_of(host).pid
        if pid is not None:
            assert usage["pid"] == pid != os.getpid()
        assert host.monitor is not None
        await host.monitor.tick()
        assert host.monitor.usage_of(PLUGIN)[0] is not None


async def test_a_denial_is_refused_and_reported_as_a_security_event(
    case: Case, conform: Path, on_backend: Callable[..., Host]
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with running(on_backend) as host:
            if case.no_sandbox is not None:
                assert await host.call(PLUGIN, "dial", port=port) == "connected", case.no_sandbox
                assert host.events.counts["security.denied"] == 0
                return
            with pytest.raises(PermissionDenied) as denied:
                await host.call(PLUGIN, "dial", port=port)
            assert denied.value.plugin == PLUGIN
            await until(lambda: host.events.counts["security.denied"] > 0, "the event")
            assert host.state is not None
            events = [e for e in host.state.history(PLUGIN) if e.action == "security.denied"]
            assert events and "denied" in (events[0].reason or "")
            assert await host.call(PLUGIN, "add", a=1, b=1) == 2  # it serves on
    finally:
        server.close()
        await server.wait_closed()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
