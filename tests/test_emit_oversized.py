"""A sandboxed plugin's emit over the payload bound (64 KiB) stays in its worker: the
host's refusal comes back, in the host's words and as the host's own, without the
payload crossing the socket (``isolation._emit``). A payload larger than the plugin's
frame bound, which used to travel whole and have its worker replaced, is refused like
any other; one of exactly the bound still goes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from plugbay.api._events import MAX_PAYLOAD
from plugbay.api.errors import ResourceLimitExceeded
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

on_host = pytest.mark.asyncio(loop_scope="module")

EMITTER = """
from plugbay import UtilityPlugin, command
from plugbay.api.errors import PlugbayError

class P(UtilityPlugin):
    @command
    async def emit(self, size: int) -> int:
        return await self.context.events.emit("blob.made", {"blob": "x" * size})

    @command
    async def emit_caught(self, size: int) -> str:
        try:
            await self.context.events.emit("blob.made", {"blob": "x" * size})
        except PlugbayError as exc:
            return f"{type(exc).__name__}: {exc.message}"
        return "sent"
"""

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

#: the emitter's frames are bounded at 1 MiB: a frame over it replaces the worker
CONFIG = """
[policy.bounds.plugins."acme.emitter"]
frame-bytes = 1048576
"""

#: {"blob": "x" * n} encodes to n + 9 bytes (map, key, str16 header) below 64 KiB
AT_THE_BOUND = MAX_PAYLOAD - 9


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Host]:
    root = tmp_path_factory.mktemp("emit")
    plugins = PluginFactory(root / "plugins")
    plugins("acme.emitter", EMITTER, extra='[events]\nemits = ["blob.made"]\n')
    plugins("acme.neighbour", NEIGHBOUR)
    config = root / "plugbay.toml"
    config.write_text(CONFIG)
    async with Host(
        plugins.root,
        state_dir=root / "state",
        config_file=config,
        entry_points=False,
        init_timeout=30,
    ) as h:
        assert all(r.placement and r.placement.sandboxed for r in h.plugins())
        yield h


def pid(host: Host) -> int:
    value = getattr(host.plugin("acme.emitter").handle, "pid", None)
    assert isinstance(value, int)
    return value


@on_host
async def test_an_emit_over_the_frame_bound_is_refused_and_its_worker_stays(host: Host) -> None:
    before = pid(host)
    said = await host.call("acme.emitter", "emit_caught", size=2 * 1024 * 1024)
    assert said == (
        "ResourceLimitExceeded: the payload of event 'blob.made' is 2,097,163 bytes, over "
        "the 65,536-byte bound; the event was refused"
    )
    assert pid(host) == before  # the 2 MiB never reached the host: nothing to replace
    assert await host.call("acme.emitter", "emit", size=10) == 0
    assert await host.call("acme.neighbour", "ping") == "pong"


@on_host
async def test_an_oversized_emit_passed_on_is_the_hosts_refusal(host: Host) -> None:
    with pytest.raises(ResourceLimitExceeded) as caught:
        await host.call("acme.emitter", "emit", size=100_000)
    error = caught.value
    assert error.message == (
        "the payload of event 'blob.made' is 100,011 bytes, over the 65,536-byte bound; "
        "the event was refused"
    )
    assert error.hint == "send a key or an id in the event and keep the data in context.storage"
    assert error.details == {"limit": "event_payload", "relayed_by": "acme.emitter"}


@on_host
async def test_a_payload_of_exactly_the_bound_goes_one_byte_more_does_not(host: Host) -> None:
    sent = host.manager.plugin_events.emitted[("acme.emitter", "blob.made")]
    assert await host.call("acme.emitter", "emit_caught", size=AT_THE_BOUND) == "sent"
    assert host.manager.plugin_events.emitted[("acme.emitter", "blob.made")] == sent + 1
    said = await host.call("acme.emitter", "emit_caught", size=AT_THE_BOUND + 1)
    assert said.endswith("is 65,537 bytes, over the 65,536-byte bound; the event was refused")


async def test_a_host_call_claiming_a_small_payload_oversized_is_not_refused_for_it(
    tmp_path: Path,
) -> None:
    """The size a worker sends instead of the payload is believed only over the bound (a
    plugin claiming less is refused for the payload it did not send, as before)."""
    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.emitter", EMITTER, extra='[events]\nemits = ["blob.made"]\n')
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False,
                    inline=["*"]) as host:  # fmt: skip
        events = host.manager.plugin_events
        with pytest.raises(ResourceLimitExceeded, match="is 70,000 bytes, over the 65,536"):
            await events.emit_from("acme.emitter", "blob.made", None, 70_000)
        with pytest.raises(Exception, match="is not a mapping"):
            await events.emit_from("acme.emitter", "blob.made", None, 10)
