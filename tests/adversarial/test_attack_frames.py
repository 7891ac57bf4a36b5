"""A hostile worker's bytes: what a sandboxed plugin writes straight to its channel.

A plugin's code runs in its worker and can write any bytes to the socket the host
reads. Whatever it writes (random bytes, truncated or oversized frames, MessagePack of
the wrong shape, answers to calls never made, floods), the host goes on serving its
neighbour with the neighbour's data intact, answers the hostile plugin's callers with
an error that says what happened (never a hang), and replaces the worker that broke the
protocol, logging it under the plugin's id.
"""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import psutil
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugbay import PlugbayError
from plugbay.isolation import frames, messages
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

NEIGHBOUR = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        await super().initialize(context)
        (context.environment.data_dir / "kept.txt").write_text("neighbour-data-7")

    @command
    def kept(self) -> str:
        return (self.context.environment.data_dir / "kept.txt").read_text()

    @command
    async def nap(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "rested"
"""

#: writes what it is given to its own channel, as raw bytes on the socket's descriptor
HOSTILE = """
import asyncio, os, socket, stat
from plugbay import UtilityPlugin, command

def channel_fd() -> int:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                sock = socket.socket(fileno=os.dup(fd))
                try:
                    if sock.family == socket.AF_UNIX:
                        return fd
                finally:
                    sock.close()
        except OSError:
            continue
    raise RuntimeError("no channel")

class P(UtilityPlugin):
    @command
    async def raw(self, data: str) -> str:
        transport = self.context.services._worker.channel.transport
        while transport.get_write_buffer_size():  # what the worker queued leaves first
            await asyncio.sleep(0.001)
        blob, fd = bytes.fromhex(data), channel_fd()
        while blob:
            blob = blob[os.write(fd, blob):]
        return "sent"

    @command
    def ping(self) -> str:
        return "pong"

    @command
    async def nap(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "rested"
"""

HOSTILE_ID = "acme.hostile"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: Any) -> AsyncIterator[Host]:
    root = tmp_path_factory.mktemp("frames")
    plugins = PluginFactory(root / "plugins")
    plugins("acme.neighbour", NEIGHBOUR)
    plugins(HOSTILE_ID, HOSTILE, extra="[resources]\ntimeout = 30\n")
    async with Host(
        plugins.root,
        state_dir=root / "state",
        entry_points=False,
        init_timeout=30,
        restart_backoff=0.01,
        max_crashes=10_000,
        crash_window=0.01,  # each crash its own: the back-off stays 0.01 s, never doubles to 30
    ) as host:
        assert {r.id: str(r.state) for r in host.plugins()} == {
            "acme.neighbour": "active",
            HOSTILE_ID: "active",
        }
        yield host


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def packed(message: dict[str, Any]) -> bytes:
    return frame(msgspec.msgpack.encode(message))


async def attack(host: Host, data: bytes) -> str:
    """The hostile plugin writes ``data`` to its channel; what its caller was told."""
    await active(host)
    try:
        return str(await host.call(HOSTILE_ID, "raw", data=data.hex()))
    except PlugbayError as exc:
        return f"{type(exc).__name__}: {exc.message}"


async def active(host: Host) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a timing
    while str(host.plugin(HOSTILE_ID).state) != "active":
        assert time.monotonic() < deadline, host.plugin(HOSTILE_ID).reason
        await asyncio.sleep(0.01)


async def after_attack(host: Host) -> None:
    """The neighbour answers with its data; the hostile plugin is served again."""
    assert await host.call("acme.neighbour", "kept") == "neighbour-data-7"
    await active(host)
    assert await host.call(HOSTILE_ID, "ping") == "pong"


BROKE = "its worker broke the protocol"


def deep(depth: int) -> bytes:
    """A Reply whose value is a list nested ``depth`` deep (past the decoder's depth)."""
    return frame(b"\x83\xa4type\xa5Reply\xa2id\x01\xa5value" + b"\x91" * depth + b"\xc0")


@pytest.mark.parametrize("where", ["alone", "after_a_frame"])
@pytest.mark.parametrize("depth", [5_000, 50_000])
async def test_a_frame_nested_past_the_decoders_depth_is_a_protocol_error(
    host: Host, caplog: pytest.LogCaptureFixture, depth: int, where: str
) -> None:
    data = deep(depth)
    if where == "after_a_frame":  # read with another frame: the buffered path
        data = packed({"type": "Pong", "id": 1}) + data
    said = await attack(host, data)
    # the host's decoder gave up (a RecursionError): its worker broke the protocol and
    # is replaced, never "its worker process exited with code 0" after a host traceback
    assert said.startswith(f"PluginCrashed: {BROKE} (malformed frame: maximum recursion"), said
    assert "Fatal error" not in caplog.text
    await after_attack(host)


async def test_an_error_without_a_message_fails_its_call_as_the_plugins_error(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    await active(host)
    handle = host.plugin(HOSTILE_ID).handle
    napping = asyncio.create_task(host.call(HOSTILE_ID, "nap", seconds=20))
    pid = handle.pid  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while not handle._requests.inflight.keys() - {0}:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    (request,) = [r for r, v in handle._requests.inflight.items() if v[1] == "nap"]  # type: ignore[union-attr]
    said = await attack(host, packed({"type": "Fail", "id": request, "error": {"where": 3}}))
    assert said == "sent"  # the worker stays: it is its own mistake, not the protocol's
    with pytest.raises(PlugbayError) as failed:
        await napping
    assert failed.value.code == "plugin_raised"
    assert failed.value.plugin == HOSTILE_ID and "'where': 3" in failed.value.message
    assert handle.pid == pid  # type: ignore[union-attr]
    assert "Fatal error" not in caplog.text
    await after_attack(host)


@pytest.mark.parametrize(
    "data",
    [
        {"dropped": {"series": "many"}},
        {"dropped": {"series": 1.5, "other": None}},
        {"observations": [["m", {}, [[], 1.0, 1.0, float("inf"), 0]]]},
        {"observations": [["m", {}, [[], 1.0, 1.0, 0, float("-inf")]]]},
    ],
    ids=["text_count", "float_count", "inf_errors", "inf_start"],
)
async def test_metrics_of_the_wrong_shape_are_dropped_and_the_worker_stays(
    host: Host, caplog: pytest.LogCaptureFixture, data: dict[str, Any]
) -> None:
    await active(host)
    pid = host.plugin(HOSTILE_ID).handle.pid  # type: ignore[union-attr]
    assert await attack(host, packed({"type": "Metrics", "data": data})) == "sent"
    assert host.plugin(HOSTILE_ID).handle.pid == pid  # type: ignore[union-attr]
    assert "Fatal error" not in caplog.text
    assert b"plugbay_plugin" in host.render_metrics()  # the figures still render
    await after_attack(host)


async def test_answers_for_another_plugins_call_ids_reach_no_other_caller(host: Host) -> None:
    await active(host)
    neighbour = host.plugin("acme.neighbour").handle
    napping = asyncio.create_task(host.call("acme.neighbour", "nap", seconds=1))
    deadline = time.monotonic() + 10
    while "nap" not in [v[1] for v in neighbour._requests.inflight.values()]:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    (request,) = [r for r, v in neighbour._requests.inflight.items() if v[1] == "nap"]  # type: ignore[union-attr]
    forged = packed({"type": "Reply", "id": request, "value": "forged"}) + packed(
        {"type": "Fail", "id": request, "error": {"type": "CallTimeout", "message": "forged"}}
    )
    assert await attack(host, forged) == "sent"  # ids are the channel's: nothing to answer
    assert await napping == "rested"
    await after_attack(host)


async def test_a_frame_that_never_ends_does_not_leave_its_caller_waiting(host: Host) -> None:
    # a header promising 16 MiB, then nothing: the call's answer and the worker's pongs
    # are read as the frame's body, so the heartbeat finds the worker silent and stops it
    said = await attack(host, frames.MAX_FRAME.to_bytes(4, "big") + b"\x81")
    assert said.startswith("PluginCrashed: "), said
    await after_attack(host)


async def test_a_loaded_frame_after_the_load_cannot_rewrite_its_sandboxs_layers(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    await active(host)

    def layers() -> dict[str, bool]:  # what ``plugbay info`` shows of its sandbox
        return {
            layer["name"]: layer["active"]
            for layer in host.plugin(HOSTILE_ID).handle.layers  # type: ignore[union-attr]
        }

    told = layers()
    assert told["seccomp"] and told["landlock"], told
    forged = [{"name": name, "active": False} for name in ("landlock", "seccomp")]
    said = await attack(
        host, packed({"type": "Loaded", "commands": [], "custom_execute": False, "layers": forged})
    )
    # out of turn, like any frame the host never asked for: its worker is replaced
    assert said.startswith(f"PluginCrashed: {BROKE} (a Loaded frame after its load"), said
    assert "Fatal error" not in caplog.text
    await after_attack(host)
    assert layers() == told


#: any MessagePack value: huge and negative integers, deep nesting, text where a number goes
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
KINDS = {kind.__name__: kind for kind in typing.get_args(messages.Message)}


@st.composite
def wrong_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A message of any kind, its fields (some, all, or others) of any value."""
    name = draw(st.sampled_from(sorted(KINDS)))
    fields = [f.name for f in msgspec.structs.fields(KINDS[name])] + ["id", "extra"]
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields)))
    return {"type": name} | {field: draw(VALUES) for field in chosen}


def many(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda ms: {"type": "Many", "messages": ms}, st.lists(inner, max_size=3))


HOSTILE_BYTES = st.one_of(
    st.binary(min_size=1, max_size=64),  # random bytes
    st.builds(frame, st.binary(max_size=32)),  # a header and a body of random bytes (or none)
    # a header promising a little more than it sends, or sending more than it promises
    st.builds(
        lambda body, off: max(len(body) + off, 0).to_bytes(4, "big") + body,
        st.binary(min_size=1, max_size=32),
        st.integers(min_value=-8, max_value=48).filter(bool),
    ),
    st.builds(lambda value: frame(msgspec.msgpack.encode(value)), VALUES),  # the wrong shape
    st.builds(packed, wrong_fields()),
    st.builds(packed, many(many(wrong_fields()) | wrong_fields() | VALUES)),  # Many in Many
)


def host_fds() -> int:
    return psutil.Process().num_fds()


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=HOSTILE_BYTES)
async def test_whatever_a_worker_writes_the_host_serves_on(
    host: Host, caplog: pytest.LogCaptureFixture, data: bytes
) -> None:
    await active(host)
    tasks, fds = len(asyncio.all_tasks()), host_fds()
    said = await attack(host, data)
    # an answer, or an error that says what happened; a frame's declared length may
    # swallow the call's answer and the worker's pongs: then the heartbeat stops it
    assert said == "sent" or (": " in said and said.split(": ", 1)[1].strip()), said
    assert "Fatal error" not in caplog.text
    await after_attack(host)
    deadline = time.monotonic() + 30  # the replaced worker's descriptors go as it is reaped
    while len(asyncio.all_tasks()) > tasks + 2 or host_fds() > fds + 4:
        assert time.monotonic() < deadline, (len(asyncio.all_tasks()), tasks, host_fds(), fds)
        await asyncio.sleep(0.05)


FLOODS = {
    "pong": ({"type": "Pong", "id": 99_999}, None),  # pongs for pings never sent
    "log": ({"type": "Log", "level": 30, "logger": "x", "message": "flood"}, "log_rate"),
    "security": (
        {"type": "Security", "event": {"kind": "denied", "detail": "flood"}},
        "security_rate",
    ),
    "metrics": ({"type": "Metrics", "data": {"logs_dropped": 1}}, None),
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
async def test_a_flood_of_frames_is_bounded_and_the_neighbour_is_served(
    host: Host, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    await active(host)
    message, reason = FLOODS[kind]
    blob = packed(message) * 2_000
    me = psutil.Process()
    rss, pid = me.memory_info().rss, host.plugin(HOSTILE_ID).handle.pid  # type: ignore[union-attr]
    until = time.monotonic() + 2  # how long the flood lasts, not a timing asserted
    while time.monotonic() < until:
        flood = asyncio.create_task(attack(host, blob))
        # the host's loop reads the flood and still serves the neighbour, its data intact
        assert await host.call("acme.neighbour", "kept") == "neighbour-data-7"
        assert await flood == "sent"
    assert host.plugin(HOSTILE_ID).handle.pid == pid  # type: ignore[union-attr]
    if reason is not None:  # past its rate: dropped and counted, never kept whole
        assert host.manager.budgets[HOSTILE_ID].dropped[reason] > 0
    assert me.memory_info().rss - rss < 50 * 2**20  # the docs' bound for the floods
    assert "Fatal error" not in caplog.text
    await after_attack(host)
