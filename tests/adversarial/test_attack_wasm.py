"""A Wasm plugin in bad faith: files outside its preopen, escapes by ``..`` and by a
symlink, an infinite loop, a memory grow bomb, a huge result, and abuse of the
host's imports (a service it did not declare, a secret it was not granted, logging
as another plugin). Each is stopped with a clear error, and the host, a Python
neighbour and a Wasm neighbour answer throughout."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from plugbay.api.errors import (
    PermissionDenied,
    PluginCallError,
    PluginTimeout,
    ResourceLimitExceeded,
)
from plugbay.isolation.policy import IsolationPolicy
from plugbay.monitor.bounds import Bounds
from plugbay.runtime.host import Host
from tests import _wasm
from tests.conftest import PluginFactory

pytestmark = _wasm.needs_toolchain

HERE = Path(__file__).resolve().parents[1] / "wasm_plugins"
ATTACKER = "acme.wasm-attacker"
SPINNER = "acme.wasm-spinner"
NEIGHBOUR = "acme.wasm-neighbour"
PY_NEIGHBOUR = "acme.py-neighbour"
MiB = 1 << 20


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: Any) -> AsyncIterator[Host]:
    root = tmp_path_factory.mktemp("wasm-arena")
    plugins = PluginFactory(root / "plugins")
    source = (HERE / "attacker.c").read_text()
    commands = (HERE / "attacker.toml").read_text()
    _wasm.write_plugin(plugins.root / "attacker", ATTACKER, source, commands)
    # the same module with a CPU bound per call of its own
    _wasm.write_plugin(
        plugins.root / "spinner",
        SPINNER,
        source,
        commands.replace("timeout = 2", "timeout = 10\ncpu-seconds = 0.3"),
    )
    _wasm.write_plugin(
        plugins.root / "neighbour", NEIGHBOUR, _wasm.template_source(), _wasm.template_manifest()
    )
    plugins(PY_NEIGHBOUR)
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_text("host-secret-17")
    policy = IsolationPolicy(
        plugin_bounds={ATTACKER: Bounds(frame_bytes=1 * MiB)},
        secrets={"api-key": "k-123"},
    )
    async with Host(
        plugins.root,
        state_dir=root / "state",
        entry_points=False,
        init_timeout=30,
        restart_backoff=0.05,
        max_crashes=50,
        policy=policy,
    ) as h:
        not_active = {r.id: r.reason for r in h.plugins() if str(r.state) != "active"}
        assert not_active == {}
        h.outside = root / "outside"  # type: ignore[attr-defined]
        yield h


async def neighbours_answer(host: Host) -> None:
    assert await host.call(NEIGHBOUR, "add", a=1, b=2) == 3
    assert (await host.call(PY_NEIGHBOUR, "ping")).startswith("pong")


async def until(check: Any, what: str, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def attacker_active(host: Host, plugin: str = ATTACKER) -> None:
    await until(lambda: str(host.plugin(plugin).state) == "active", f"{plugin} to be back")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "/data/../etc/passwd",
        "../../../../etc/passwd",
        "SECRET",
        "/data/../../SECRET",
    ],
)
async def test_no_file_outside_its_data_directory_can_be_read(host: Host, path: str) -> None:
    outside = host.outside  # type: ignore[attr-defined]
    path = path.replace("SECRET", str(outside / "secret.txt").lstrip("/"))
    with pytest.raises(PluginCallError) as refused:
        await host.call(ATTACKER, "read_file", path=path)
    assert "cannot open" in refused.value.message
    assert "host-secret-17" not in str(refused.value.to_dict())
    await neighbours_answer(host)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_symlink_in_its_data_directory_does_not_lead_out(host: Host) -> None:
    rec = host.plugin(ATTACKER)
    data_dir = host.manager.settings.data_root / rec.id
    link = data_dir / "escape"
    if not link.is_symlink():
        os.symlink(host.outside / "secret.txt", link)  # type: ignore[attr-defined]
    with pytest.raises(PluginCallError, match="cannot open /data/escape"):
        await host.call(ATTACKER, "read_file", path="/data/escape")
    # its own files it may read and write
    assert await host.call(ATTACKER, "write_file", path="/data/note.txt") == "written"
    assert (
        await host.call(ATTACKER, "read_file", path="/data/note.txt") == "written by the attacker"
    )
    assert (data_dir / "note.txt").read_text() == "written by the attacker"
    with pytest.raises(PluginCallError, match="cannot write /tmp"):
        await host.call(ATTACKER, "write_file", path="/tmp/planted.txt")
    assert not planted()


@pytest.mark.asyncio(loop_scope="module")
async def test_what_it_prints_lands_in_its_own_log(host: Host) -> None:
    await host.call(ATTACKER, "say", text="printed by the module")
    await until(
        lambda: any(r["message"] == "printed by the module" for r in host.logs(ATTACKER)),
        "the line in its log",
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_it_sees_no_environment(host: Host) -> None:
    assert os.environ.get("PATH")
    assert await host.call(ATTACKER, "env", name="PATH") is None
    assert await host.call(ATTACKER, "env", name="HOME") is None


@pytest.mark.asyncio(loop_scope="module")
async def test_an_infinite_loop_is_cut_at_its_deadline_and_the_plugin_serves_on(
    host: Host,
) -> None:
    spin = asyncio.create_task(host.call(ATTACKER, "spin"))
    # the host's loop is free meanwhile: the neighbours answer while it spins
    await until(lambda: host.plugin(ATTACKER).handle.running() != [], "the spin to start")  # type: ignore[union-attr]
    await neighbours_answer(host)
    started = time.monotonic()
    with pytest.raises(PluginTimeout, match="did not finish within 2 s"):
        await spin
    assert time.monotonic() - started < 5
    assert await host.call(ATTACKER, "ping") == "pong"  # a fresh instance took its place
    usage = host.plugin(ATTACKER).handle.usage()  # type: ignore[union-attr]
    assert usage is not None and usage["instances_replaced"] >= 1


@pytest.mark.asyncio(loop_scope="module")
async def test_a_loop_past_its_cpu_bound_is_a_resource_limit(host: Host) -> None:
    started = time.monotonic()
    with pytest.raises(ResourceLimitExceeded, match=r"CPU time of 0\.3 s per call") as hit:
        await host.call(SPINNER, "spin")
    assert time.monotonic() - started < 5  # its CPU bound, long before its 10 s deadline
    assert hit.value.details["limit"] == "cpu_seconds"
    assert await host.call(SPINNER, "ping") == "pong"
    assert host.plugin(SPINNER).state == "active"
    await neighbours_answer(host)


def address_space() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) << 10 for line in status if line.startswith("VmSize:"))


@pytest.mark.asyncio(loop_scope="module")
async def test_a_replaced_instance_gives_back_its_address_space(host: Host) -> None:
    # each instance reserves GiBs of address space for its linear memory; a store that
    # was only dropped kept it (its host functions tie it to the handle), 6 GiB a time
    before = address_space()
    for _ in range(5):
        with pytest.raises(ResourceLimitExceeded):
            await host.call(SPINNER, "spin")  # cut at its CPU bound: a fresh instance
    assert await host.call(SPINNER, "ping") == "pong"
    grown = address_space() - before
    assert grown < 2 << 30, f"the host's address space grew by {grown / (1 << 30):.1f} GiB"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_memory_grow_bomb_stops_at_its_limit(host: Host) -> None:
    first = host.plugin(ATTACKER).handle
    with pytest.raises(ResourceLimitExceeded, match="reached its memory limit, 16 MiB") as hit:
        await host.call(ATTACKER, "grow")
    assert "set by its manifest's [resources] memory = '16MiB'" in str(hit.value)
    assert hit.value.plugin == ATTACKER and hit.value.details["limit"] == "memory"
    await neighbours_answer(host)
    await until(lambda: host.plugin(ATTACKER).handle is not first, "the replacement")
    await attacker_active(host)
    assert await host.call(ATTACKER, "ping") == "pong"
    assert host.state is not None
    actions = [e.action for e in host.state.history(ATTACKER)]
    assert "security.limit" in actions and "restart" in actions


@pytest.mark.asyncio(loop_scope="module")
async def test_a_huge_result_is_refused_unread(host: Host) -> None:
    await attacker_active(host)
    with pytest.raises(PluginCallError, match="over the host's bound of 1,048,576") as big:
        await host.call(ATTACKER, "huge", size=2 * MiB)
    assert big.value.details["limit"] == "result_bytes"
    assert len(await host.call(ATTACKER, "huge", size=1000)) == 1000  # it serves on
    await neighbours_answer(host)


def planted() -> bool:
    return os.path.exists("/tmp/planted.txt")


def request(**fields: Any) -> str:
    return msgspec.json.encode(fields).decode()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_service_it_did_not_declare_is_refused_by_the_broker(host: Host) -> None:
    await attacker_active(host)
    refused_before = host.manager.broker.refused[ATTACKER]
    for ask in (
        request(service="plugbay.host", command="plugins", params={}),
        request(plugin=PY_NEIGHBOUR, command="ping", params={}),
    ):
        with pytest.raises(PermissionDenied, match="not declared or granted") as denied:
            await host.call(ATTACKER, "ask", via="service", request=ask)
        assert denied.value.plugin == ATTACKER
        assert denied.value.details["layer"] == "broker"
    assert host.manager.broker.refused[ATTACKER] == refused_before + 2
    await neighbours_answer(host)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_secret_is_given_only_when_granted(host: Host) -> None:
    await attacker_active(host)
    with pytest.raises(PermissionDenied, match="secret 'api-key' was not granted") as info:
        await host.call(ATTACKER, "ask", via="secret", request=request(name="api-key"))
    assert host.state is not None
    # the security event in the error's words (``operation``), as every backend says them
    said = "the sandbox denied secret api-key (permission 'secret:api-key' not granted)"
    assert info.value.details["operation"] == "secret api-key"
    await until(
        lambda: any(
            said in (e.reason or "") and (e.details or {}).get("operation") == "secret api-key"
            for e in host.state.history(ATTACKER)  # type: ignore[union-attr]
            if e.action == "security.denied"
        ),
        "the denial in its history",
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_a_forged_denial_is_its_own_error(host: Host) -> None:
    """An error the module made up, dressed as a host denial, stays its own error."""
    await attacker_active(host)
    forged = {"type": "PermissionDenied", "message": "the sandbox denied x",
              "details": {"layer": "broker", "denial": "0123456789abcdef"}}  # fmt: skip
    with pytest.raises(PluginCallError) as own:
        await host.call(ATTACKER, "forge", error=msgspec.json.encode(forged).decode())
    assert not isinstance(own.value, PermissionDenied)


@pytest.mark.asyncio(loop_scope="module")
async def test_logging_as_another_plugin_lands_in_its_own_log(host: Host) -> None:
    await attacker_active(host)
    forged = request(
        level=40, logger=f"plugbay.plugin.{NEIGHBOUR}", message="forged by the attacker"
    )
    await host.call(ATTACKER, "ask", via="log", request=forged)
    await until(
        lambda: any("forged by" in r["message"] for r in host.logs(ATTACKER, limit=200)),
        "the record in its own log",
    )
    assert not any("forged by" in r["message"] for r in host.logs(NEIGHBOUR, limit=200))
    mine = [r for r in host.logs(ATTACKER, limit=200) if "forged by" in r["message"]]
    assert mine[0]["fields"]["claimed_logger"] == f"plugbay.plugin.{NEIGHBOUR}"
