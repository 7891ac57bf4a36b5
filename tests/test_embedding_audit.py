"""An application developer's day with an embedded ``Host`` (docs/applications.md): the
mistakes one makes on the way (a call before the start or after the stop, on another
event loop or thread, one ``asyncio.run`` per step, ``with`` without ``async``, a second
host on the same state directory, a grant misspelled, a listener given a string or a
``def``), each answered with the error that says what to do (and a stop after one
``asyncio.run`` too many still ending the workers and freeing the state directory); a
listener that hangs or raises, which holds neither the other listeners nor the host's
stop; and an application that runs its loop now and then, which is not a stalled loop."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from plugbay import (
    ConfigError,
    HostLockedError,
    HostStateError,
    ParameterError,
    PlugbayError,
    SystemEvent,
)
from plugbay.runtime.events import EventBus
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

T = TypeVar("T")

GREETER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def greet(self, name: str) -> str:
        return f"Hello, {name}!"
"""


def _children() -> set[int]:
    """The pids of this process's children now."""
    found = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                found.update(int(pid) for pid in f.read().split())
        except FileNotFoundError:  # a thread that ended since the listing
            continue
    return found


async def test_a_call_before_the_start_or_after_the_stop_says_the_host_is_not_serving(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.greeter", GREETER)
    host = make_host()
    with pytest.raises(HostStateError) as before:
        await host.call("acme.greeter", "greet", name="Ada")
    assert "this host is not started" in str(before.value)
    assert "async with Host(...)" in str(before.value)  # what to do
    with pytest.raises(HostStateError, match="this host is not started"):
        host.info("acme.greeter")  # not "no plugin 'acme.greeter' is known"
    async with host:
        assert await host.call("acme.greeter", "greet", name="Ada") == "Hello, Ada!"
    with pytest.raises(HostStateError) as after:
        await host.call("acme.greeter", "greet", name="Ada")
    assert "this host was stopped" in str(after.value)
    with pytest.raises(HostStateError):
        await host.call_many("acme.greeter", "greet", [{"name": "Ada"}])
    assert host.plugin("acme.greeter").state == "stopped"  # its record is still there to read


def _host_loop() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-host-loop")
    thread.start()
    return loop, thread


GREETS = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    greeted: list[str] = []

    @command
    def greet(self, name: str) -> str:
        self.greeted.append(name)
        return f"Hello, {name}!"

    @command
    def who(self) -> list[str]:
        return self.greeted
"""


@pytest.mark.slow
def test_a_call_on_another_threads_loop_is_the_callers_mistake_not_the_plugins(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.greeter", GREETS)
    children, threads = _children(), set(threading.enumerate())
    host = make_host(inline=())  # a sandboxed worker: its channel is the host loop's
    loop, thread = _host_loop()

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    try:
        run(host.start())
        assert host.plugin("acme.greeter").isolation == "process"
        assert run(host.call("acme.greeter", "greet", name="Ada")) == "Hello, Ada!"
        with pytest.raises(HostStateError) as wrong:  # awaited on a loop of this thread
            asyncio.run(host.call("acme.greeter", "greet", name="Bob"))
        text = str(wrong.value)
        assert "from this event loop" in text and "thread 'test-host-loop'" in text
        assert "run_coroutine_threadsafe" in text  # how to hand the call over
        assert "the plugin's own error" not in text
        with pytest.raises(HostStateError):  # a typed proxy's call is the same call
            asyncio.run(host.proxy("acme.greeter").greet(name="Bob"))
        with pytest.raises(HostStateError):
            asyncio.run(host.call_many("acme.greeter", "greet", [{"name": "Bob"}]))
        with pytest.raises(HostStateError) as drained:  # its events are the host loop's too
            asyncio.run(host.events.drain())
        assert "cannot drain the host's events from this event loop" in str(drained.value)
        assert "run_coroutine_threadsafe" in str(drained.value)
        with pytest.raises(HostStateError):  # its stop too is the host loop's
            asyncio.run(host.stop())
        metrics = host.plugin("acme.greeter").metrics
        assert metrics is not None
        assert metrics.snapshot()["commands"]["greet"]["errors"] == 0  # not the plugin's
        assert run(host.call("acme.greeter", "greet", name="Grace")) == "Hello, Grace!"
        # a refused call never reached the worker: Bob was never greeted (it was, though
        # refused, when it was written to the channel from the caller's thread)
        assert run(host.call("acme.greeter", "who")) == ["Ada", "Grace"]
        run(host.events.drain())  # on the host's loop, as ever
    finally:
        run(host.stop())
        run(loop.shutdown_default_executor())  # its threads, as asyncio.run ends with
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()

    # nothing of the host is left: no worker, zygote or helper process, no thread (a
    # worker's seccomp listener thread ends once its worker's descriptor closes)
    def left() -> tuple[set[int], set[threading.Thread]]:
        alive = {t for t in threading.enumerate() if t.is_alive()}
        return _children() - children, alive - threads

    end = time.monotonic() + 30
    while any(left()) and time.monotonic() < end:
        time.sleep(0.05)
    assert left() == (set(), set())


ONE_RUN_PER_STEP = """
import asyncio
from pathlib import Path
from plugbay import Host


def gone(pid: int) -> bool:  # exited (a zombie's reaping is its parent's business)
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


host = Host("plugins", state_dir="state", entry_points=False)  # acme.greeter in a worker
asyncio.run(host.start())
worker = host.plugin("acme.greeter").handle.pid
for step in (lambda: host.call("acme.greeter", "greet", name="Ada"), host.stop):
    try:
        print("answered |", asyncio.run(step()))
    except Exception as exc:
        print(type(exc).__name__, "|", exc)
print("worker gone |", gone(worker))
asyncio.run(host.stop())  # stopped: nothing more to do, nothing raised


async def again() -> str:  # the state directory is free for another host at once
    async with Host("plugins", state_dir="state", entry_points=False) as other:
        return await other.call("acme.greeter", "greet", name="Grace")


print("another host |", asyncio.run(again()))
"""


@pytest.mark.slow
def test_an_asyncio_run_per_step_is_told_that_the_hosts_loop_is_closed(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.greeter", GREETER)
    (tmp_path / "app.py").write_text(ONE_RUN_PER_STEP)
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    lines = [line.partition(" | ") for line in done.stdout.splitlines()]
    assert [kind for kind, _, _ in lines] == [
        "HostStateError",
        "HostStateError",
        "worker gone",
        "another host",
    ], done.stdout + done.stderr
    (_, _, call), (_, _, stop), (_, _, worker_gone), (_, _, again) = lines
    assert "cannot call acme.greeter greet: the event loop this host started on" in call
    assert "is closed" in call and "await host.stop() ends its workers" in call
    # the stop did what it could without the loop, and says what it could not
    assert "stopped the host without its plugins' cleanup()" in stop and "is closed" in stop
    assert "its 1 worker process(es) were killed" in stop
    assert "the lock on " in stop and "released, so a new Host may serve it now" in stop
    assert "one asyncio.run(main())" in stop
    assert worker_gone == "True"  # not left to the end of the process
    assert again == "Hello, Grace!"  # the state directory was let go of
    assert done.stderr == ""  # no traceback, no warning from asyncio: the errors say it all


TRIALS_THEN_ONE_RUN_TOO_MANY = """
import asyncio
import os
from pathlib import Path
from plugbay import Host


def sockets() -> set[str]:  # what this process's descriptors are, for its sockets
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # closed since the listing
            continue
    return {link for link in found if link.startswith("socket:")}


def gone(pid: int) -> bool:  # exited (a zombie's reaping is its parent's business)
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


host = Host("plugins", state_dir="state", entry_points=False)  # both plugins in workers


async def start() -> dict[str, str]:  # a canary and a shadow left running by the run's end
    await host.start()
    for plugin_id in ("acme.greeter", "acme.other"):
        host.install(Path("v2") / f"{plugin_id}-1.1.0")
    await host.trials.canary("acme.greeter", "1.1.0")
    await host.trials.shadow("acme.other", "1.1.0")
    tried = [host.trials.canaries["acme.greeter"].handle, host.trials.shadows["acme.other"].handle]
    return {os.readlink(f"/proc/self/fd/{h._sock.fileno()}"): str(h.pid) for h in tried}


tried = asyncio.run(start())
try:
    asyncio.run(host.stop())
except Exception as exc:
    print(type(exc).__name__, "|", exc)
print("held |", sorted(pid for link, pid in tried.items() if link in sockets()))
print("gone |", all(gone(int(pid)) for pid in tried.values()))
asyncio.run(host.stop())  # stopped: nothing more to do, nothing raised
"""


@pytest.mark.slow
def test_a_stop_after_the_loop_closed_ends_the_canaries_and_shadows_workers_too(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    newer = PluginFactory(tmp_path / "v2")
    for plugin_id in ("acme.greeter", "acme.other"):
        plugins(plugin_id, GREETER)
        newer(plugin_id, GREETER, version="1.1.0")
    (tmp_path / "app.py").write_text(TRIALS_THEN_ONE_RUN_TOO_MANY)
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    lines = [line.partition(" | ") for line in done.stdout.splitlines()]
    assert [kind for kind, _, _ in lines] == ["HostStateError", "held", "gone"], (
        done.stdout + done.stderr
    )
    (_, _, stop), (_, _, held), (_, _, gone) = lines
    # two plugins' workers, and the canary's and the shadow's tried beside them
    assert "its 4 worker process(es) were killed" in stop
    assert held == "[]"  # the host keeps no socket to a worker it tried
    assert gone == "True"
    assert done.stderr == ""


def test_with_host_without_async_says_to_write_async_with(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    host = make_host()
    with pytest.raises(TypeError) as refused, host:  # type: ignore[attr-defined]
        pass
    assert "'async with Host(...) as host:'" in str(refused.value)
    assert host.phase == "stopped"  # nothing was started


async def test_a_second_host_in_the_process_is_told_of_state_dir_not_a_command_line_flag(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.greeter", GREETER)
    async with make_host():
        with pytest.raises(HostLockedError) as refused:
            async with make_host():
                pass
    text = str(refused.value)
    assert "this process: another Host object" in text
    assert "state_dir=" in text and "--state" not in text


async def test_host_grant_refuses_what_is_not_a_permission(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.greeter", GREETER, extra='[permissions]\nnetwork = ["127.0.0.1:8080"]\n')
    async with make_host() as host:
        for misspelled in ("network", "netwrk:127.0.0.1:8080", "env"):
            with pytest.raises(ConfigError) as refused:
                await host.grant("acme.greeter", misspelled)
            assert f"'{misspelled}' is not a permission" in str(refused.value)
            assert "network:HOST:PORT" in str(refused.value)  # the forms to write
        assert host.info("acme.greeter")["permissions"]["granted"] == []  # nothing kept
        done = await host.grant("acme.greeter", "network:127.0.0.1:8080")
        assert done["asked"] and done["permissions"]["granted"] == ["network:127.0.0.1:8080"]


async def test_listen_refuses_kinds_given_as_a_string_and_a_handler_that_is_not_async(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.greeter", GREETER)
    heard: list[str] = []

    async def hear(event: SystemEvent) -> None:
        heard.append(event.kind)

    def plain(event: SystemEvent) -> None:
        heard.append(event.kind)

    async with make_host() as host:
        with pytest.raises(ParameterError) as as_string:
            host.events.listen("my-app", 100, "plugin.*", hear)  # type: ignore[arg-type]
        assert "kinds=('plugin.*',)" in str(as_string.value)
        with pytest.raises(ParameterError) as not_async:
            host.events.listen("my-app", 100, ("plugin.*",), plain)  # type: ignore[arg-type]
        assert "async def" in str(not_async.value)
        host.events.listen("my-app", 100, ("plugin.*",), hear)
        await host.unload("acme.greeter")
        await host.events.drain()
    assert heard == ["plugin.unloaded"]  # the refused ones never subscribed


HANG_AFTER = 1.0


@pytest.mark.slow
async def test_a_hung_listener_holds_neither_the_other_listeners_nor_the_hosts_stop(
    plugins: PluginFactory,
    make_host: Callable[..., Host],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(
        "plugbay.runtime.host.EventBus", functools.partial(EventBus, handler_timeout=HANG_AFTER)
    )
    for n in range(5):
        plugins(f"acme.p{n}")
    heard: list[str] = []
    hung: list[str] = []

    async def hang(event: SystemEvent) -> None:
        hung.append(event.kind)
        await asyncio.sleep(3600)

    async def note(event: SystemEvent) -> None:
        heard.append(event.kind)

    host = make_host()
    async with host:
        host.events.listen("hangs", 0, (), hang)  # before the other: it is asked first
        host.events.listen("notes", 1, (), note)
        await host.unload("acme.p0")
        await host.events.drain()  # the hung one is cut short here, once
        assert heard == ["plugin.unloaded"]
        started = time.monotonic()
    stopped_in = time.monotonic() - started
    # host.stopping and four plugin.unloaded: before, each waited HANG_AFTER for it
    assert heard == ["plugin.unloaded", "host.stopping"] + ["plugin.unloaded"] * 4
    assert stopped_in < 2 * HANG_AFTER, f"the stop took {stopped_in:.1f} s"
    assert hung[0] == "plugin.unloaded"  # and it kept getting events, in its own lane
    said = [r.getMessage() for r in caplog.records if r.name == "plugbay.events"]
    assert any(
        f"listener 'hangs' took more than {HANG_AFTER:g} s on event plugin.unloaded" in s
        for s in said
    ), said


async def test_a_listener_that_raises_is_logged_with_its_traceback(
    plugins: PluginFactory, make_host: Callable[..., Host], caplog: pytest.LogCaptureFixture
) -> None:
    plugins("acme.greeter", GREETER)

    async def broken(event: SystemEvent) -> None:
        raise KeyError(event.kind)  # the application's own bug

    async with make_host() as host:
        host.events.listen("my-app", 0, ("plugin.*",), broken)
        with caplog.at_level(logging.WARNING, logger="plugbay.events"):
            await host.unload("acme.greeter")
            await host.events.drain()
    failed = [r for r in caplog.records if "listener 'my-app' failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None  # where in the handler it raised
    assert "in broken" in caplog.text
    assert isinstance(HostStateError("x"), PlugbayError)  # one hierarchy, exported


def test_the_errors_point_to_the_section_that_shows_sync_use() -> None:
    from plugbay.runtime.serving import SYNC_USE

    guide = (Path(__file__).resolve().parent.parent / "docs" / "applications.md").read_text()
    title = SYNC_USE.split('"')[1]
    assert f"## {title}\n" in guide
    assert "asyncio.run_coroutine_threadsafe(coroutine, loop)" in guide


@pytest.mark.slow
def test_a_pause_between_an_applications_runs_is_not_a_stalled_loop(
    plugins: PluginFactory, make_host: Callable[..., Host], caplog: pytest.LogCaptureFixture
) -> None:
    plugins("acme.greeter", GREETER)
    host = make_host(monitor={"loop-block-after": 0.2})  # inline: the watchdog's business
    with asyncio.Runner() as runner:  # an application that runs its loop now and then
        runner.run(host.start())
        try:
            assert runner.run(host.call("acme.greeter", "greet", name="Ada")) == "Hello, Ada!"
            # the application does other things, no loop running, for many times the
            # watchdog's bound: it looks at the loop a dozen times meanwhile
            assert host.monitor is not None and host.monitor._watchdog is not None
            watchdog = host.monitor._watchdog
            looks, end = watchdog.looks + 12, time.monotonic() + 30
            while watchdog.looks < looks and time.monotonic() < end:
                time.sleep(0.01)
            assert watchdog.looks >= looks, "the watchdog stopped looking"
            assert runner.run(host.call("acme.greeter", "greet", name="Grace")) == "Hello, Grace!"
            assert watchdog.current() is None and watchdog.take() == []
            assert host.health()["status"] == "green"
        finally:
            runner.run(host.stop())
    stalls = [r.getMessage() for r in caplog.records if "has not turned" in r.getMessage()]
    assert stalls == []  # no "event loop has not turned … the host's own code" at all
