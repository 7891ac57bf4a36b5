"""A Wasm plugin's event is a plugin event as any plugin's emit is
(``runtime.plugin_events``): one its manifest does not declare under ``[events] emits``
is refused in the words a Python plugin's is, one it declares is heard by a plugin's
``@on_event`` listener and counted. And a secret it was not granted is refused with the
details a Python plugin's is, inline or in a worker. A C module built with the toolchain
and Python plugins, on one host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from plugbay import PermissionDenied
from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host
from tests import _wasm
from tests._waiting import until
from tests.conftest import PluginFactory

pytestmark = _wasm.needs_toolchain

WASM_PLUGINS = Path(__file__).resolve().parent / "wasm_plugins"
WASM = "acme.wasm-emitter"

LISTENER = """
from plugbay import UtilityPlugin, command, on_event

class P(UtilityPlugin):
    heard: list = []

    @on_event("notes.saved")
    def saved(self, event: dict) -> None:
        self.heard.append(event)

    @command
    def what_was_heard(self) -> list:
        return self.heard
"""

PYTHON_EMITTER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def emit(self, name: str) -> int:
        return await self.context.events.emit(name, {"key": "a"})

    @command
    def token(self) -> str:
        return self.context.secrets.get("api-key")
"""

EMITS = '\n[events]\nemits = ["notes.saved"]\n'


def event(name: str) -> str:
    return msgspec.json.encode({"name": name, "data": {"key": "a"}}).decode()


def new_host(tmp_path: Path) -> Host:
    plugins = PluginFactory(tmp_path / "plugins")
    _wasm.write_plugin(
        plugins.root / "wasm-emitter",
        WASM,
        (WASM_PLUGINS / "attacker.c").read_text(),
        (WASM_PLUGINS / "attacker.toml").read_text() + EMITS,
    )
    plugins("acme.listener", LISTENER, extra='[events.listens."notes.saved"]\n')
    plugins("acme.inline-emitter", PYTHON_EMITTER, extra=EMITS)
    plugins("acme.worker-emitter", PYTHON_EMITTER, extra=EMITS)
    policy = IsolationPolicy(inline=["acme.listener", "acme.inline-emitter"])
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=60,
        policy=policy,
    )


def refusal(error: PermissionDenied, plugin: str) -> tuple[str, str | None, dict[str, Any]]:
    """What the caller reads, with the relaying plugin's id left out."""
    assert error.plugin == plugin and error.details["relayed_by"] == plugin
    return error.message, error.hint, {k: v for k, v in error.details.items() if k != "relayed_by"}


async def test_a_wasm_modules_event_is_checked_and_heard_as_a_python_plugins(
    tmp_path: Path,
) -> None:
    async with new_host(tmp_path) as host:
        assert host.plugin(WASM).isolation == "wasm"
        assert host.plugin("acme.listener").isolation == "inline"
        emitted = host.manager.plugin_events.emitted

        with pytest.raises(PermissionDenied) as python:
            await host.call("acme.inline-emitter", "emit", name="notes.deleted")
        with pytest.raises(PermissionDenied) as wasm:
            await host.call(WASM, "ask", via="event", request=event("notes.deleted"))
        assert wasm.value.message == (
            "the host refused emitting the event 'notes.deleted': not declared or granted"
        )
        assert refusal(wasm.value, WASM) == refusal(python.value, "acme.inline-emitter")
        assert emitted[(WASM, "notes.deleted")] == 0
        assert host.events.counts[f"plugin.{WASM}.notes.deleted"] == 0  # nor on the host's bus

        assert await host.call(WASM, "ask", via="event", request=event("notes.saved")) is None
        await until(
            lambda: host.call("acme.listener", "what_was_heard"), "the listener hears it", 30
        )
        assert await host.call("acme.listener", "what_was_heard") == [{"key": "a"}]
        assert emitted[(WASM, "notes.saved")] == 1
        assert await host.call(WASM, "ping") == "pong"  # the module serves on


async def test_a_secret_not_granted_has_the_same_details_in_every_backend(
    tmp_path: Path,
) -> None:
    async with new_host(tmp_path) as host:
        assert host.plugin("acme.worker-emitter").isolation == "process"
        ask = msgspec.json.encode({"name": "api-key"}).decode()
        with pytest.raises(PermissionDenied) as wasm:
            await host.call(WASM, "ask", via="secret", request=ask)
        with pytest.raises(PermissionDenied) as inline:
            await host.call("acme.inline-emitter", "token")
        with pytest.raises(PermissionDenied) as worker:
            await host.call("acme.worker-emitter", "token")
        assert set(wasm.value.details) == set(inline.value.details) == set(worker.value.details)
        said = {"operation": "secret api-key", "permission": "secret:api-key"}
        # the same keys; a Wasm module's is the host's own refusal (layer broker: known as
        # the host's by its stamp alone), a Python plugin's its secrets layer's
        assert wasm.value.details == {**said, "layer": "broker", "relayed_by": WASM}
        assert inline.value.details == {
            **said,
            "layer": "secrets",
            "relayed_by": "acme.inline-emitter",
        }
        assert worker.value.details == {
            **said,
            "layer": "secrets",
            "relayed_by": "acme.worker-emitter",
        }
        assert wasm.value.message == inline.value.message == "secret 'api-key' was not granted"
