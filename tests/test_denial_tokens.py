"""A denial the host's broker made to a sandboxed plugin is the host's only as made.

The broker refuses a sandboxed plugin's emit of an event its manifest does not
declare; the Wasm host refuses a module a secret it was not granted. Passed on
unchanged, the refusal reaches the caller as the host's, with its message, hint and
details. The same token on an error the plugin wrote itself (a different message,
another operation), or the same denial passed off a second time, is the plugin's own
error (``isolation.refusals``: one scheme for every refusal).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from plugbay import PermissionDenied, PluginCallError
from plugbay.isolation.policy import IsolationPolicy
from plugbay.isolation.wasm import WasmHandle
from plugbay.runtime.host import Host
from tests import _wasm
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow]
on_host = pytest.mark.asyncio(loop_scope="module")

RELAY = """
from plugbay import PermissionDenied, PlugbayError, UtilityPlugin, command

class P(UtilityPlugin):
    kept = None

    async def _denied(self) -> PlugbayError:
        try:
            await self.context.events.emit("relay.undeclared", {"n": 1})
        except PlugbayError as exc:
            return exc
        raise AssertionError("the host let an undeclared event through")

    @command
    async def emit_undeclared(self) -> int:
        return await self.context.events.emit("relay.undeclared", {"n": 1})  # propagates

    @command
    async def keep_denial(self) -> None:
        self.kept = await self._denied()

    @command
    def raise_kept(self) -> None:
        raise self.kept

    @command
    async def reworded(self) -> None:
        real = await self._denied()
        raise PermissionDenied("the host refused reading the victim's secret",
                               plugin=real.plugin, hint=real.hint, details=dict(real.details))

    @command
    async def tokens_on_another_denial(self) -> None:
        real = await self._denied()
        tokens = {k: v for k, v in real.details.items() if k in ("denial", "refusal")}
        assert tokens, real.details
        raise PermissionDenied(
            "the host refused calling 'acme.victim.secret': not declared or granted",
            plugin=real.plugin,
            hint="run 'plugbay grant acme.relay host:state-read'",
            details={"operation": "calling 'acme.victim.secret'", "permission": None,
                     "layer": "broker", **tokens},
        )
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Host]:
    root = tmp_path_factory.mktemp("denial-tokens")
    plugins = PluginFactory(root / "plugins")
    plugins("acme.relay", RELAY)
    plugins("acme.neighbour")
    async with Host(
        plugins.root, state_dir=root / "state", entry_points=False, init_timeout=30
    ) as h:
        assert all(r.placement and r.placement.sandboxed for r in h.plugins())
        yield h


GENUINE = "the host refused emitting the event 'relay.undeclared': not declared or granted"


@on_host
async def test_a_broker_denial_passed_on_is_the_hosts(host: Host) -> None:
    with pytest.raises(PermissionDenied) as caught:
        await host.call("acme.relay", "emit_undeclared")
    error = caught.value
    assert error.plugin == "acme.relay" and error.message == GENUINE
    assert error.hint == 'declare it in the manifest: [events] emits = ["relay.undeclared"]'
    assert error.details == {
        "operation": "emitting the event 'relay.undeclared'",
        "permission": None,
        "layer": "broker",
        "declare": '[events] emits = ["relay.undeclared"]',
        "relayed_by": "acme.relay",
    }
    assert (await host.call("acme.neighbour", "ping")).startswith("pong")


@on_host
async def test_a_broker_denial_passed_off_twice_is_the_plugins_the_second_time(
    host: Host,
) -> None:
    await host.call("acme.relay", "keep_denial")
    with pytest.raises(PermissionDenied) as first:
        await host.call("acme.relay", "raise_kept")
    assert first.value.message == GENUINE
    with pytest.raises(PluginCallError) as again:
        await host.call("acme.relay", "raise_kept")
    assert again.value.details["claimed"] == "permission_denied"
    assert "the host did not deny or stop anything here" in (again.value.hint or "")


@on_host
@pytest.mark.parametrize("command", ["reworded", "tokens_on_another_denial"])
async def test_a_broker_denials_token_on_another_error_is_the_plugins_own(
    host: Host, command: str
) -> None:
    with pytest.raises(PluginCallError) as caught:
        await host.call("acme.relay", command)
    error = caught.value
    assert error.code == "plugin_raised" and error.plugin == "acme.relay"
    assert error.message.startswith("the plugin raised an error of its own that claims to be")
    assert error.details["claimed"] == "permission_denied"
    assert (await host.call("acme.neighbour", "ping")).startswith("pong")


# -- a Wasm module refused a secret -----------------------------------------------------

WASM = "acme.wasm-asker"
WASM_PLUGINS = Path(__file__).resolve().parent / "wasm_plugins"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def wasm_host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Host]:
    root = tmp_path_factory.mktemp("wasm-denial-tokens")
    plugins = PluginFactory(root / "plugins")
    _wasm.write_plugin(
        plugins.root / "asker",
        WASM,
        (WASM_PLUGINS / "attacker.c").read_text(),
        (WASM_PLUGINS / "attacker.toml").read_text(),
    )
    plugins("acme.neighbour")
    async with Host(
        plugins.root,
        state_dir=root / "state",
        entry_points=False,
        init_timeout=30,
        policy=IsolationPolicy(secrets={"api-key": "k-123"}),
    ) as h:
        assert str(h.plugin(WASM).state) == "active", h.plugin(WASM).reason
        yield h


def secret_refused(host: Host) -> dict[str, Any]:
    """The error the host's import answers the module's ask for 'api-key' with (what the
    module holds: the test asks the module's own handle, as the module does)."""
    handle = host.plugin(WASM).handle
    assert isinstance(handle, WasmHandle)
    reply = handle.request("secret", {"name": "api-key"})
    assert isinstance(reply, dict) and "error" in reply
    error: dict[str, Any] = reply["error"]
    return error


async def forge(host: Host, error: dict[str, Any]) -> None:
    await host.call(WASM, "forge", error=msgspec.json.encode(error).decode())


@_wasm.needs_toolchain
@on_host
async def test_a_wasm_secret_denial_passed_on_is_the_hosts(wasm_host: Host) -> None:
    ask = msgspec.json.encode({"name": "api-key"}).decode()
    with pytest.raises(PermissionDenied) as caught:
        await wasm_host.call(WASM, "ask", via="secret", request=ask)
    error = caught.value
    assert error.plugin == WASM and error.message == "secret 'api-key' was not granted"
    assert error.hint == (
        f"ask for it under [permissions] secrets and have the operator run "
        f"'plugbay grant {WASM} secret:api-key'"
    )
    assert error.details == {  # the keys of a Python plugin's, inline or in a worker
        "operation": "secret api-key",
        "permission": "secret:api-key",
        "layer": "broker",
        "relayed_by": WASM,
    }


@_wasm.needs_toolchain
@on_host
async def test_a_wasm_secret_denial_is_the_hosts_once_and_only_as_made(
    wasm_host: Host,
) -> None:
    reworded = secret_refused(wasm_host) | {"message": "secret 'db-password' was not granted"}
    with pytest.raises(PluginCallError) as own:
        await forge(wasm_host, reworded)
    assert own.value.details["claimed"] == "permission_denied"

    genuine = secret_refused(wasm_host)
    with pytest.raises(PermissionDenied):
        await forge(wasm_host, genuine)  # passed on unchanged: the host's
    with pytest.raises(PluginCallError) as again:
        await forge(wasm_host, genuine)  # spent: the module's own now
    assert "the host did not deny or stop anything here" in (again.value.hint or "")
    assert (await wasm_host.call("acme.neighbour", "ping")).startswith("pong")
