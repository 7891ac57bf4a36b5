"""A Wasm plugin's event (``plugbay.event``) over the payload bound (64 KiB) is refused
as any plugin's emit is: in the host's words, as the host's own refusal (passed on by
the module, it is told as the host's), nothing emitted; the module keeps serving and a
neighbour answers. A C module and a Python component, compiled with the toolchain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plugbay.api._events import MAX_PAYLOAD
from plugbay.api.errors import PlugbayError, ResourceLimitExceeded
from plugbay.runtime.host import Host
from tests import _wasm
from tests._waiting import until

pytestmark = _wasm.needs_toolchain

HERE = Path(__file__).resolve().parent

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

#: a plugin's events are declared (``runtime.plugin_events``)
EMITS_BLOBS = '\n[events]\nemits = ["blob.made"]\n'

#: {"blob": "x" * n} measures n + 9 bytes (map, key, str16 header) below 64 KiB
AT_THE_BOUND = MAX_PAYLOAD - 9

#: what the refusal of {"blob": "x" * 100_000} says
REFUSED = (
    "the payload of event 'blob.made' is 100,011 bytes, over the 65,536-byte bound; "
    "the event was refused"
)


def neighbour(root: Path) -> None:
    directory = root / "neighbour"
    directory.mkdir(parents=True)
    (directory / "plugin.toml").write_text(
        'id = "acme.neighbour"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
    )
    (directory / "main.py").write_text(NEIGHBOUR)


def new_host(tmp_path: Path) -> Host:
    return Host(
        tmp_path / "plugins", state_dir=tmp_path / "state", entry_points=False, init_timeout=60
    )


def blob(size: int) -> str:
    return json.dumps({"name": "blob.made", "data": {"blob": "x" * size}})


def assert_the_hosts_refusal(error: ResourceLimitExceeded, plugin: str) -> None:
    assert error.message == REFUSED
    assert error.hint == "send a key or an id in the event and keep the data in context.storage"
    assert error.details == {"limit": "event_payload", "relayed_by": plugin}


async def test_a_c_modules_oversized_event_is_the_hosts_refusal(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    attacker = (HERE / "wasm_plugins" / "attacker.c").read_text()
    commands = (HERE / "wasm_plugins" / "attacker.toml").read_text()
    _wasm.write_plugin(root / "caller", "acme.caller", attacker, commands + EMITS_BLOBS)
    neighbour(root)
    async with new_host(tmp_path) as host:
        emitted = host.manager.plugin_events.emitted
        with pytest.raises(ResourceLimitExceeded) as caught:
            await host.call("acme.caller", "ask", via="event", request=blob(100_000))
        assert_the_hosts_refusal(caught.value, "acme.caller")
        assert (
            await host.call("acme.caller", "ask", via="event", request=blob(AT_THE_BOUND)) is None
        )
        with pytest.raises(ResourceLimitExceeded, match="is 65,537 bytes, over the 65,536-byte"):
            await host.call("acme.caller", "ask", via="event", request=blob(AT_THE_BOUND + 1))
        huge = '{"name": "blob.made", "data": {"n": 100000000000000000000000000000}}'
        with pytest.raises(PlugbayError, match=r"'blob\.made' holds an integer beyond 64 bits"):
            await host.call("acme.caller", "ask", via="event", request=huge)
        # the one within the bound only
        await until(lambda: emitted[("acme.caller", "blob.made")] == 1, "it is emitted")
        assert sum(emitted.values()) == 1
        assert await host.call("acme.caller", "ping") == "pong"
        assert await host.call("acme.neighbour", "ping") == "pong"


EMITS = """

def emit(size: int) -> None:
    ask("event", name="blob.made", data={"blob": "x" * size})
"""


def pystats(root: Path) -> Path:
    source, manifest = _wasm.python_template()
    source = source.replace("\ndef count() -> int:", EMITS + "\n\ndef count() -> int:").replace(
        '"calls": count,', '"calls": count,\n    "emit": emit,'
    )
    manifest += '\n[commands.emit]\nparams = { size = "int" }\nreturns = "None"\n' + EMITS_BLOBS
    return _wasm.write_plugin(root / "pystats", "acme.pystats", source, manifest, language="python")


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("componentize-py") is None and not _wasm.componentize_beside(),
    reason="no componentize-py: pip install 'plugbay[wasm-python]' (make's set-up does)",
)
async def test_a_python_components_oversized_event_is_the_hosts_refusal(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    pystats(root)
    neighbour(root)
    async with new_host(tmp_path) as host:
        with pytest.raises(ResourceLimitExceeded) as caught:
            await host.call("acme.pystats", "emit", size=100_000)
        assert_the_hosts_refusal(caught.value, "acme.pystats")
        assert await host.call("acme.pystats", "emit", size=10) is None
        emitted = host.manager.plugin_events.emitted
        await until(lambda: emitted[("acme.pystats", "blob.made")] == 1, "it is emitted")
        # the same instance serves on: two emits and this call
        assert await host.call("acme.pystats", "calls") == 3
        assert await host.call("acme.neighbour", "ping") == "pong"
