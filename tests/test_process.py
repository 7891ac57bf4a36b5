"""The process backend: the same plugin, unchanged, inline or in its own worker process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay import (
    ParameterError,
    PluginCallError,
    PluginCrashed,
    PluginStateError,
    PluginTimeout,
    ResultTypeError,
)
from plugbay.isolation.affinity import HOLD_AFTER
from plugbay.isolation.process import ProcessHandle
from plugbay.isolation.zygote import Child
from plugbay.runtime.host import Host
from tests._recording import Recording
from tests._waiting import until
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow

CODE = """
import asyncio, os, socket, stat
from dataclasses import dataclass
from plugbay import UtilityPlugin, command, PluginContext

@dataclass
class Point:
    x: int
    y: int

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        self.greeting = context.config["greeting"]
        context.logger.info("started in %d", os.getpid())

    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b

    @command
    async def greet(self, name: str) -> str:
        await asyncio.sleep(0)
        return f"{self.greeting}, {name}"

    @command
    def move(self, p: Point, dx: int) -> Point:
        return Point(p.x + dx, p.y)

    @command
    def liar(self) -> int:
        return "seven"  # type: ignore[return-value]

    @command
    def explode(self) -> None:
        raise KeyError("gone")

    @command
    async def nap(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "woke"

    @command
    def pid(self) -> int:
        return os.getpid()

    @command
    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @command
    def crash(self) -> None:
        os._exit(9)

    @command
    def upstream(self) -> None:
        raise TimeoutError("upstream took too long")

    @command
    def scribble(self) -> None:
        # write garbage onto the channel to the host
        for fd in os.listdir("/proc/self/fd"):
            try:
                if stat.S_ISSOCK(os.fstat(int(fd)).st_mode):
                    os.write(int(fd), b"\\xff\\xff\\xff\\xff" + b"junk")
            except OSError:
                pass

    @command
    async def ask(self, text: str) -> str:
        shout = self.context.services.require("shouting", "^1")
        return await shout.shout(text=text)
"""

PROVIDER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def shout(self, text: str) -> str:
        return text.upper()
"""


@pytest.fixture(params=["inline", "process"])
def isolation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(plugins: PluginFactory, tmp_path: Path) -> Callable[[str], Host]:
    def build(isolation: str) -> Host:
        plugins(
            "acme.subject",
            CODE,
            extra=f'isolation = "{isolation}"\n'
            '[config.greeting]\ntype = "string"\ndefault = "Hello"\n'
            '[services]\nrequires = { shouting = "^1" }\n'
            "[resources]\ntimeout = 1.0\n",
        )
        plugins("acme.shout", PROVIDER, extra='[services]\nprovides = { shouting = "1.0.0" }\n')
        plugins("acme.ok")
        return Host(
            plugins.root,
            state_dir=tmp_path / "state",
            entry_points=False,
            init_timeout=20,
            # inline only when the operator trusts it; "process" is the default sandbox
            inline=["*"] if isolation == "inline" else [],
        )

    return build


async def test_the_same_plugin_behaves_the_same_on_both_backends(
    make: Callable[[str], Host], isolation: str
) -> None:
    async with make(isolation) as host:
        assert host.plugin("acme.subject").isolation == isolation
        assert await host.call("acme.subject", "add", a=2) == 3
        assert await host.call("acme.subject", "greet", name="Ada") == "Hello, Ada"
        moved = await host.call("acme.subject", "move", p={"x": 1, "y": 2}, dx=3)
        assert (moved if isinstance(moved, dict) else vars(moved)) == {"x": 4, "y": 2}
        with pytest.raises(ParameterError, match="parameter 'a' expects int, got str"):
            await host.call("acme.subject", "add", a="2")
        with pytest.raises(
            ResultTypeError, match="command 'liar' returned str but is declared to return int"
        ):
            await host.call("acme.subject", "liar")
        with pytest.raises(PluginCallError, match="raised KeyError: 'gone'"):
            await host.call("acme.subject", "explode")
        with pytest.raises(PluginTimeout, match="did not finish within 1 s"):
            await host.call("acme.subject", "nap", seconds=30)
        # a TimeoutError the plugin raises itself is its own error, with its message
        with pytest.raises(PluginCallError, match="raised TimeoutError: upstream took too long"):
            await host.call("acme.subject", "upstream")
        assert await host.call("acme.subject", "nap", seconds=0.01) == "woke"
        assert await host.call("acme.subject", "ask", text="hey") == "HEY"
        results = await asyncio.gather(
            *(host.call("acme.subject", "nap", seconds=0.2) for _ in range(16))
        )
        assert results == ["woke"] * 16
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"


async def test_a_typed_proxy_gives_the_same_objects_on_both_backends(
    make: Callable[[str], Host], isolation: str, plugins: PluginFactory
) -> None:
    from plugbay.isolation.loading import import_plugin
    from plugbay.model.manifest import load_manifest

    async with make(isolation) as host:
        # the caller's own copy of the plugin class, as an application would import it
        cls = import_plugin(load_manifest(plugins.root / "acme.subject-1.0.0")).cls
        subject = host.get(cls, "acme.subject")
        moved = await subject.move(p={"x": 1, "y": 2}, dx=3)
        assert type(moved).__name__ == "Point"
        assert (moved.x, moved.y) == (4, 2)
        assert await subject.add(2, 5) == 7


async def test_text_values_are_converted_only_when_the_caller_says_so(
    make: Callable[[str], Host], isolation: str
) -> None:
    """The CLI's and HTTP's text reach the worker as text to convert; a program's call is
    checked strictly, on either backend, call by call."""
    async with make(isolation) as host:
        assert await host.call_with("acme.subject", "add", {"a": "2", "b": "5"}, strict=False) == 7
        with pytest.raises(ParameterError, match="parameter 'a' expects int, got str"):
            await host.call_with("acme.subject", "add", {"a": "2"})
        assert await host.call_with("acme.subject", "add", {"a": 2}) == 3
        with pytest.raises(ParameterError):
            await host.call_with("acme.subject", "add", {"a": "two"}, strict=False)


async def test_a_worker_is_its_own_process_without_the_hosts_environment(
    make: Callable[[str], Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGBAY_TEST_CANARY", "the host's secret")
    async with make("process") as host:
        assert await host.call("acme.subject", "pid") != os.getpid()
        env = await host.call("acme.subject", "environment")
        assert "PLUGBAY_TEST_CANARY" not in env
        assert set(env) <= {"LANG", "PATH", "TZ", "LC_CTYPE"}
        info = host.info("acme.subject")
        assert info["commands"][0]["signature"] == "add(a: int, b: int = 1) -> int"
        usage = info["usage"]
        assert usage["pid"] == await host.call("acme.subject", "pid")
        assert usage["shared"] is False
        assert 0 < usage["uss_bytes"] < usage["rss_bytes"] < 200 * 2**20
        assert usage["threads"] >= 1
        assert usage["open_files"] >= 1
        # under the default policy every plugin has a worker of its own
        assert host.manager.monitor_usage("acme.ok")["pid"] not in (os.getpid(), usage["pid"])


async def test_a_crash_fails_the_call_and_the_plugin_not_the_host(
    make: Callable[[str], Host],
) -> None:
    async with make("process") as host:
        pending = asyncio.ensure_future(host.call("acme.subject", "nap", seconds=30))
        await asyncio.sleep(0.1)
        with pytest.raises(PluginCrashed, match="its worker process exited"):
            await host.call("acme.subject", "crash")
        with pytest.raises(PluginCrashed):
            await pending
        rec = host.plugin("acme.subject")
        assert str(rec.state) == "restarting"  # in its backoff (test_supervision.py)
        assert "its worker process exited" in (rec.reason or "")
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"


async def test_a_malformed_frame_stops_the_worker(make: Callable[[str], Host]) -> None:
    async with make("process") as host:
        with pytest.raises(PluginCrashed, match="broke the protocol"):
            await host.call("acme.subject", "scribble")
        assert str(host.plugin("acme.subject").state) == "restarting"
        assert await host.call("acme.shout", "shout", text="still") == "STILL"


async def test_an_import_error_in_the_worker_is_reported(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins(
        "acme.broken", "raise RuntimeError('no config file')\n", extra='isolation = "process"\n'
    )
    plugins("acme.ok")
    async with Host(plugins.root, state_dir=tmp_path / "s", entry_points=False) as host:
        reason = host.plugin("acme.broken").reason or ""
        assert "importing 'main' raised RuntimeError: no config file" in reason
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"


def test_workers_die_with_their_host(plugins: PluginFactory, tmp_path: Path) -> None:
    plugins(
        "acme.subject",
        CODE.replace('context.config["greeting"]', '"hi"'),
        extra='isolation = "process"\n',
    )
    script = textwrap.dedent(
        f"""
        import asyncio
        from plugbay.runtime.host import Host

        async def main():
            async with Host({str(plugins.root)!r}, state_dir={str(tmp_path / "s")!r}, entry_points=False) as h:
                print(await h.call("acme.subject", "pid"), flush=True)
                await asyncio.sleep(3600)

        asyncio.run(main())
        """
    )
    host = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        worker = int(host.stdout.readline())
        os.kill(worker, 0)  # alive
        os.kill(host.pid, signal.SIGKILL)
        host.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"worker {worker} outlived its host")
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()


def test_channel_rejects_oversized_truncated_and_malformed_frames() -> None:
    from plugbay.isolation import frames

    closed: list[tuple[str | None, bool]] = []
    got: list[object] = []

    def channel() -> frames.Channel:
        return frames.Channel(
            got.append, lambda reason, protocol: closed.append((reason, protocol))
        )

    one = frames.encode(frames.Ping(7))
    ch = channel()
    ch.data_received(one[:3])
    ch.data_received(one[3:] + one)
    assert got == [frames.Ping(7), frames.Ping(7)]
    channel().data_received((frames.MAX_FRAME + 1).to_bytes(4, "big"))
    assert closed[-1] == (
        f"a frame of {frames.MAX_FRAME + 1} bytes is over the {frames.MAX_FRAME}-byte limit",
        True,
    )
    channel().data_received((3).to_bytes(4, "big") + b"\xc1\xc1\xc1")
    assert closed[-1][0] is not None and closed[-1][0].startswith("malformed frame")
    ch = channel()
    ch.data_received(one[:5])
    ch.eof_received()
    assert closed[-1] == ("the stream ended inside a frame (5 bytes pending)", True)


async def test_channel_batches_small_frames_and_never_holds_a_large_one() -> None:
    """A burst of big frames (a plugin flooding its log) must leave as it is sent: held
    back to be joined at the end of the turn, it once filled a worker's memory limit and
    its reply never left."""
    from plugbay.isolation import frames

    got: list[object] = []
    sending = frames.Channel(lambda m: None, lambda r, p: None)
    transport = Recording()
    sending.connection_made(transport)
    big = frames.Log(30, "x", "big", {"blob": "z" * (1 << 20)})
    for message in (frames.Ping(1), frames.Ping(2), frames.Ping(3), big, frames.Ping(4)):
        sending.send(message)
    assert len(transport.writes) == 3  # Ping 1 at once; Pings 2-3 joined before the big one
    assert len(transport.writes[-1]) > 1 << 20
    await asyncio.sleep(0)  # the end of the turn: Ping 4 leaves
    assert len(transport.writes) == 4
    receiving = frames.Channel(got.append, lambda r, p: None)
    receiving.data_received(b"".join(transport.writes))
    assert got == [frames.Ping(1), frames.Ping(2), frames.Ping(3), big, frames.Ping(4)]


async def test_the_calls_a_read_of_answers_wakes_leave_in_one_write() -> None:
    """The host's end: a read with several answers wakes several callers, whose next
    calls (sent in the loop turn that runs them) leave together, so the worker wakes
    once for them; a lone caller's next call still leaves at once."""
    from plugbay.isolation import frames

    loop = asyncio.get_running_loop()
    host: frames.Channel

    def on_answer(message: frames.Message) -> None:  # a caller woken, calling again
        assert isinstance(message, frames.Reply)
        loop.call_soon(host.send, frames.Call(message.id + 10, "echo", {"x": 1}))

    host = frames.Channel(on_answer, lambda r, p: None)
    host.join_turn, host.join_after_read = False, True
    transport = Recording()
    host.connection_made(transport)
    host.data_received(b"".join(frames.encode(frames.Reply(i, i)) for i in range(1, 17)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(transport.writes) == 1  # 16 calls, one write
    got: list[frames.Message] = []
    frames.Channel(got.append, lambda r, p: None).data_received(transport.writes[0])
    assert [m.id for m in got if isinstance(m, frames.Call)] == list(range(11, 27))
    host.data_received(frames.encode(frames.Reply(1, 1)))
    await asyncio.sleep(0)
    assert len(transport.writes) == 2  # the lone caller's call left in its own turn


async def test_calls_joined_in_a_turn_leave_as_one_frame_and_arrive_one_by_one() -> None:
    """Calls (and answers) a turn joins travel as one ``Many`` frame, which the receiver
    hands on one by one, in order, with what was sent around them; a large one leaves
    as a frame of its own, after them; a peer that puts anything else in a ``Many`` has
    broken the protocol."""
    import msgspec

    from plugbay.isolation import frames

    sending = frames.Channel(lambda m: None, lambda r, p: None)
    transport = Recording()
    sending.connection_made(transport)
    big = frames.Call(9, "echo", {"blob": "z" * 100_000})
    sent: list[frames.Message] = [
        *(frames.Call(i, "echo", {"x": i}) for i in range(1, 6)),
        frames.Ping(6),
        frames.Reply(7, [1, 2]),
        frames.Call(8, "echo", {"x": 8}),
        big,
        frames.Call(10, "echo", {"x": 10}),
    ]
    for message in sent:
        sending.send(message, more=True)
    assert len(transport.writes) == 2  # the frames before the big call, then it
    await asyncio.sleep(0)  # the end of the turn: the last call leaves
    assert len(transport.writes) == 3
    wire = b"".join(transport.writes)
    got: list[frames.Message] = []
    closed: list[tuple[str | None, bool]] = []
    receiving = frames.Channel(got.append, lambda r, p: closed.append((r, p)))
    for at in range(0, len(wire), 7):  # in pieces, as a socket may deliver them
        receiving.data_received(wire[at : at + 7])
    assert got == sent and not closed
    # frames: Many(1-5), Ping, Many(7, 8), the big call alone, the last call alone
    sizes, at = [], 0
    while at < len(wire):
        size = int.from_bytes(wire[at : at + 4], "big")
        sizes.append(size)
        at += 4 + size
    assert len(sizes) == 5 and sizes[3] > 100_000
    forged = msgspec.msgpack.encode({"type": "Many", "messages": [{"type": "Ping", "id": 1}]})
    receiving.data_received(len(forged).to_bytes(4, "big") + forged)
    assert closed and closed[0][1] is True and "malformed frame" in str(closed[0][0])
    assert got == sent  # nothing of it was handed on


STUCK = """
import asyncio, os, time
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def block(self) -> None:
        time.sleep(30)  # an async command that blocks its loop: a hang, as any other

    @command
    def work(self, seconds: float) -> int:
        time.sleep(seconds)  # a def command runs in the loop: nothing else is answered
        return os.getpid()

    @command(timeout=1.5)
    def overrun(self) -> None:
        time.sleep(60)

    @command
    def work_then_stall(self, seconds: float, stall: float) -> int:
        asyncio.get_running_loop().call_soon(time.sleep, stall)  # right after its answer
        time.sleep(seconds)
        return os.getpid()

    @command
    async def ping(self) -> str:
        return "pong"
"""


def supervised(plugins: PluginFactory, tmp_path: Path, **kwargs: object) -> Host:
    plugins(
        "acme.subject",
        CODE.replace('context.config["greeting"]', '"hi"'),
        extra='isolation = "process"\n',
    )
    plugins(
        "acme.stuck",
        STUCK,
        extra='isolation = "process"\n[resources]\ntimeout = 20\n',
    )
    plugins("acme.ok")
    return Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, **kwargs)  # type: ignore[arg-type]


async def stuck_worker(host: Host) -> ProcessHandle:
    """acme.stuck's worker handle, once the worker has answered a call."""
    assert await host.call("acme.stuck", "ping") == "pong"
    handle = host.plugin("acme.stuck").handle
    assert isinstance(handle, ProcessHandle)
    return handle


async def wait_for_state(host: Host, plugin_id: str, state: str, seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while str(host.plugin(plugin_id).state) != state:
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(
                f"{plugin_id} is {host.plugin(plugin_id).state}, not {state}: {host.plugin(plugin_id).reason}"
            )
        await asyncio.sleep(0.02)


async def test_a_crashed_worker_is_restarted(plugins: PluginFactory, tmp_path: Path) -> None:
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        first = await host.call("acme.subject", "pid")
        with pytest.raises(PluginCrashed):
            await host.call("acme.subject", "crash")
        await wait_for_state(host, "acme.subject", "active")
        assert await host.call("acme.subject", "pid") != first
        assert host.state is not None
        actions = [e.action for e in host.state.history("acme.subject")]
        assert actions[:3] == ["load", "restart", "crash"]
        # operators see it: the restart is counted for Prometheus
        assert b'plugbay_plugin_restarts_total{plugin="acme.subject"} 1.0' in (
            host.render_metrics()
        )


async def test_a_batch_in_flight_when_its_worker_dies_fails_call_by_call_at_once(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """``call_many``'s answers land in one list (no future per call): the calls answered
    before the crash keep their values, the others fail in their places at once (not
    at their deadline), nothing of the batch is left in flight, and the plugin is
    restarted and serves again."""
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        handle = host.plugin("acme.subject").handle
        assert handle is not None
        params = [{"seconds": 0.0}] * 3 + [{"seconds": 30.0}] * 5
        batch = asyncio.ensure_future(host.call_many("acme.subject", "nap", params))
        deadline = time.monotonic() + 10
        while len(handle.running()) != 5:  # the quick three answered, five still napping
            assert time.monotonic() < deadline, handle.running()
            await asyncio.sleep(0.01)
        with pytest.raises(PluginCrashed):
            await host.call("acme.subject", "crash")
        got = await asyncio.wait_for(batch, 10)  # its deadline is 30 s away
        assert got[:3] == ["woke"] * 3
        assert all(isinstance(g, PluginCrashed) for g in got[3:]), got
        assert handle.running() == []
        await wait_for_state(host, "acme.subject", "active")
        assert await host.call_many("acme.subject", "add", [{"a": 1}, {"a": 2}]) == [2, 3]


async def test_too_many_crashes_fail_the_plugin_until_enabled_or_the_next_start(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    async with supervised(plugins, tmp_path, restart_backoff=0.05, max_crashes=3) as host:
        for _ in range(3):
            await wait_for_state(host, "acme.subject", "active")
            with pytest.raises(PluginCrashed):
                await host.call("acme.subject", "crash")
        await wait_for_state(host, "acme.subject", "failed")
        reason = host.plugin("acme.subject").reason or ""
        assert reason.startswith(
            "plugin 'acme.subject': gave up restarting it after 3 crashes within 60 s; "
            "the last: its worker process exited"
        )
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"
        await host.enable("acme.subject")
        assert isinstance(await host.call("acme.subject", "pid"), int)
    async with supervised(plugins, tmp_path) as host:  # not kept off: the next start tries
        assert str(host.plugin("acme.subject").state) == "active"


async def test_a_worker_that_stops_answering_is_found_within_a_second(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        assert await host.call("acme.stuck", "ping") == "pong"
        started = asyncio.get_running_loop().time()
        with pytest.raises(PluginCrashed, match="stopped answering its heartbeat"):
            await host.call("acme.stuck", "block")
        assert asyncio.get_running_loop().time() - started < 2.5
        await wait_for_state(host, "acme.stuck", "active")
        assert await host.call("acme.stuck", "ping") == "pong"


async def test_a_def_command_may_hold_its_worker_past_the_heartbeat_within_its_time_limit(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A def command runs in its worker's loop, so no ping is answered while it runs: that
    silence is the call's, up to its time limit (20 s here), and is not taken for a hang."""
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        handle = await stuck_worker(host)
        pid, loop = handle.pid, asyncio.get_running_loop()
        work = asyncio.ensure_future(host.call("acme.stuck", "work", seconds=4))
        # silent for longer than the heartbeat lets any other silence go on
        await until(
            lambda: work.done() or handle.beat.silent(loop.time()) > handle.beat.timeout + 0.5,
            "the worker's silence past the heartbeat's timeout",
        )
        assert not work.done(), work.exception()
        assert handle.alive() is None  # live: busy in a def command
        queued = asyncio.ensure_future(host.call("acme.stuck", "ping"))  # behind the work
        assert await work == pid
        assert await queued == "pong"
        assert handle.pid == pid and handle.alive() is None
        assert not [e for e in host.history("acme.stuck") if e.action == "crash"]


async def test_the_pong_behind_a_def_commands_answer_is_waited_for_not_taken_for_a_hang(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """The worker reads the ping only once a def command returns, so its pong comes after
    the command's answer: a worker a moment late with it (0.3 s here) is live meanwhile
    and kept; one that stays silent is still found within seconds. (Without the grace
    the first worker was killed in every run.)"""
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        handle = await stuck_worker(host)
        pid, loop = handle.pid, asyncio.get_running_loop()
        # 2 s: a ping goes out within a tick or two of the call, and waits behind it
        call = host.call("acme.stuck", "work_then_stall", seconds=2.0, stall=0.3)
        assert await call == pid
        assert handle.beat.silent(loop.time()) > handle.beat.timeout  # its pong not yet come
        assert handle.alive() is None
        assert await host.call("acme.stuck", "ping") == "pong"
        assert handle.pid == pid
        assert not [e for e in host.history("acme.stuck") if e.action == "crash"]
        # silent for good once its def command has returned: a hang like any other
        call = host.call("acme.stuck", "work_then_stall", seconds=1.5, stall=30)
        assert await call == pid
        answered = loop.time()
        with pytest.raises(PluginCrashed, match="stopped answering its heartbeat"):
            await host.call("acme.stuck", "ping")
        assert loop.time() - answered < 2.5
        await wait_for_state(host, "acme.stuck", "active")
        assert await host.call("acme.stuck", "ping") == "pong"


async def test_a_def_command_its_caller_gave_up_on_still_holds_the_heartbeat(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A caller that stops waiting (its own timeout) cannot stop a def body: the worker
    runs it to its end, silent meanwhile, and is not taken for hung. Its late answer is
    dropped, and the worker serves on."""
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        handle = await stuck_worker(host)
        pid, loop = handle.pid, asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await host.call("acme.stuck", "work", seconds=3)
        await until(
            lambda: handle.beat.silent(loop.time()) > handle.beat.timeout + 0.5,
            "the worker silent past the heartbeat's timeout",
        )
        assert handle.alive() is None and handle.pid == pid
        assert await host.call("acme.stuck", "ping") == "pong"  # once the work is done
        assert handle.pid == pid and not handle._requests.abandoned  # its answer came
        assert not [e for e in host.history("acme.stuck") if e.action == "crash"]


async def test_a_batch_of_def_calls_longer_than_the_heartbeat_is_answered_whole(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """``call_many`` sends a batch in one write and the worker runs its def calls one after
    the other in its loop: 2 s of them leave its heartbeat unanswered for over a second,
    and the batch is answered whole, by the same worker."""
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        handle = await stuck_worker(host)
        pid, loop = handle.pid, asyncio.get_running_loop()
        silences: list[float] = []

        async def watch() -> None:
            while True:
                silences.append(handle.beat.silent(loop.time()))
                await asyncio.sleep(0.05)

        watcher = asyncio.ensure_future(watch())
        try:
            answers = await host.call_many("acme.stuck", "work", [{"seconds": 0.02}] * 100)
        finally:
            watcher.cancel()
        assert answers == [pid] * 100
        assert max(silences) > handle.beat.timeout  # the heartbeat went unanswered
        assert handle.pid == pid
        assert not [e for e in host.history("acme.stuck") if e.action == "crash"]


async def test_a_def_command_past_its_time_limit_times_out_and_its_worker_is_replaced(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        pid = (await stuck_worker(host)).pid
        with pytest.raises(PluginTimeout, match=r"did not finish within 1\.5 s"):
            await host.call("acme.stuck", "overrun")  # sleeps 60 s
        crash = await until(
            lambda: [e for e in host.history("acme.stuck") if e.action == "crash"],
            "the held worker killed",
        )
        assert "while 'overrun' ran past its time limit" in (crash[0].reason or "")
        await wait_for_state(host, "acme.stuck", "active")
        assert await host.call("acme.stuck", "ping") == "pong"
        replaced = host.plugin("acme.stuck").handle
        assert isinstance(replaced, ProcessHandle) and replaced.pid != pid


async def test_a_reaped_worker_is_never_signalled_again(
    plugins: PluginFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the zygote has collected a worker's exit its pid is free for any new process:
    the crash report and the release that follow send it no signal. A live worker's release
    still kills it."""
    kill = Child.kill
    sent: list[tuple[int, int, bool]] = []  # (pid, signal, was the worker reaped then)
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        first = await host.call("acme.subject", "pid")
        old = host.plugin("acme.subject").handle
        assert isinstance(old, ProcessHandle) and old.pid == first and not old.reaped

        def spy(child: Child) -> None:
            if not child.closed:  # a signal is sent
                sent.append((child.pid, signal.SIGKILL, old.reaped))
            kill(child)

        monkeypatch.setattr(Child, "kill", spy)
        with pytest.raises(PluginCrashed):
            await host.call("acme.subject", "crash")
        await wait_for_state(host, "acme.subject", "active")  # crashed, released, restarted
        assert await host.call("acme.subject", "pid") != first
        assert old.reaped
        old.release()  # idempotent: again, and still no signal
        assert [s for s in sent if s[0] == first and s[2]] == []
        # a live worker: release kills it, and the zygote collects it
        live = host.plugin("acme.ok").handle
        assert isinstance(live, ProcessHandle) and not live.reaped
        live.release()
        assert (live.pid, signal.SIGKILL) in [(pid, sig) for pid, sig, _ in sent]
        await until(lambda: live.reaped, "the released worker's exit")


async def test_calls_made_while_a_crashed_plugin_restarts_wait_for_it(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A worker's crash is not its callers' doing: calls that arrive during the restart's
    backoff are served by the restarted worker, not refused as if the plugin had failed
    to load; past the host's call timeout they are refused, saying it restarts."""
    async with supervised(plugins, tmp_path, restart_backoff=0.3) as host:
        first = await host.call("acme.subject", "pid")
        with pytest.raises(PluginCrashed):
            await host.call("acme.subject", "crash")
        assert str(host.plugin("acme.subject").state) == "restarting"  # in its backoff
        pids = await asyncio.gather(*(host.call("acme.subject", "pid") for _ in range(5)))
        assert len(set(pids)) == 1 and pids[0] != first
    async with supervised(plugins, tmp_path, restart_backoff=60, call_timeout=0.2) as host:
        with pytest.raises(PluginCrashed):
            await host.call("acme.subject", "crash")
        with pytest.raises(PluginStateError, match="is restarting after a crash") as refused:
            await host.call("acme.subject", "pid")
        assert "crashed and is being restarted" in str(refused.value)
        assert "plugbay enable" not in str(refused.value)
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"


NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")


def _process_numbered(pid: int) -> subprocess.Popen[bytes] | None:
    """A process of ours given the number ``pid`` (through ``ns_last_pid``, as CRIU
    restores one): what the machine may do with a worker's number once the zygote has
    collected its exit. None if another process took the number first, every try.
    Blocks (no await): the host must not hear of the exit meanwhile."""
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.001)  # the zygote collects the exit: the number is free
    assert not os.path.exists(f"/proc/{pid}"), "the zygote did not collect the worker"
    for _ in range(50):
        NS_LAST_PID.write_text(str(pid - 1))
        victim = subprocess.Popen(["sleep", "60"])
        if victim.pid == pid:
            return victim
        victim.kill()
        victim.wait()
    return None


@pytest.mark.skipif(
    not os.access(NS_LAST_PID, os.W_OK) or len(os.sched_getaffinity(0)) < 2,
    reason="needs ns_last_pid (CAP_SYS_ADMIN) to give a pid out again, and two cores",
)
async def test_a_worker_number_given_to_another_process_is_neither_moved_nor_killed(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """Between the zygote collecting a worker's exit and the host reading that it did,
    the machine may give the worker's number to any new process. Releasing the worker
    in that gap (a reload, a stop, the heartbeat's verdict) must not move that process
    to another core nor kill it: the host signals the worker through its pidfd."""
    async with supervised(plugins, tmp_path) as host:
        for i in range(HOLD_AFTER + 2):  # held to this core: its release moves it back
            await host.call("acme.subject", "add", a=i)
        handle = host.plugin("acme.subject").handle
        assert isinstance(handle, ProcessHandle) and handle.follow.cpu >= 0
        assert handle.child.fd is not None
        pid = handle.pid
        # from here to release() nothing awaits: the host cannot read the zygote's word
        os.kill(pid, signal.SIGKILL)
        victim = _process_numbered(pid)
        if victim is None:
            pytest.skip(f"pid {pid} was taken by another process each time")
        try:
            one_core = {min(os.sched_getaffinity(0))}
            os.sched_setaffinity(victim.pid, one_core)
            assert not handle.reaped  # the host has not heard: the gap
            handle.release()
            assert os.sched_getaffinity(victim.pid) == one_core, "it was moved"
            assert os.sched_getscheduler(victim.pid) == os.SCHED_OTHER
            # the host goes on: the worker's exit is read, a neighbour answers
            await until(lambda: handle.reaped, "the host reading the worker's exit")
            assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"
            # by now a SIGKILL sent in release() would have ended it
            assert victim.poll() is None, "the process given the worker's number was killed"
        finally:
            victim.kill()
            victim.wait()
