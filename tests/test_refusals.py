"""A refusal the host made to a sandboxed plugin, passed on by the plugin, is the host's.

The host refuses a sandboxed plugin's event payload over 64 KiB and its host calls past
its rate bound; a plugin that lets the refusal propagate out of its command passes on
the host's own error, code and hint (``isolation.refusals``). A plugin that makes one
up, dresses a genuine one's token on an error of its own, or passes the same refusal
off a second time is shown as raising its own error, as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from plugbay import PermissionDenied, PluginCallError, ResourceLimitExceeded
from plugbay.isolation.identity import judge_error
from plugbay.isolation.refusals import KEPT, TOKEN, Refusals
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow]
#: the tests that share one host
on_host = pytest.mark.asyncio(loop_scope="module")

RELAY = """
from plugbay import PermissionDenied, PlugbayError, ResourceLimitExceeded, UtilityPlugin, command

BIG = {"blob": "x" * 100_000}

class P(UtilityPlugin):
    kept = None

    async def _refused(self) -> PlugbayError:
        try:
            await self.context.events.emit("relay.big", BIG)
        except PlugbayError as exc:
            return exc
        raise AssertionError("the host took a payload of 100 kB")

    @command
    async def emit_big(self) -> int:
        return await self.context.events.emit("relay.big", BIG)  # the refusal propagates

    @command
    async def emit_until_refused(self) -> int:
        for n in range(100_000):
            await self.context.events.emit("relay.small", {"n": n})  # refused: propagates
        return n

    @command
    async def keep_refusal(self) -> str:
        self.kept = await self._refused()
        return str(self.kept.details.get("refusal"))

    @command
    def raise_kept(self) -> None:
        raise self.kept

    @command
    async def flood_then_raise(self, calls: int) -> None:
        first = await self._refused()
        for n in range(calls):  # each refused (its rate bound), each caught
            try:
                await self.context.events.emit("relay.small", {"n": n})
            except PlugbayError:
                pass
        raise first

    @command
    async def reword_refusal(self) -> None:
        real = await self._refused()
        raise ResourceLimitExceeded(
            "over its bound of 1 host call a second; the call was refused",
            plugin=real.plugin, hint=real.hint, details=dict(real.details),
        )

    @command
    async def token_on_a_denial(self) -> None:
        real = await self._refused()
        raise PermissionDenied(real.message, plugin=real.plugin, hint=real.hint,
                               details=dict(real.details))

    @command
    def made_up(self, token: str) -> None:
        error = ResourceLimitExceeded(
            "the payload of event 'relay.big' is 100,014 bytes, over the 65,536-byte bound; "
            "the event was refused",
            plugin="acme.relay",
            hint="send a key or an id in the event and keep the data in context.storage",
            details={"limit": "event_payload"},
        )
        if token == "digest":  # the digest is no secret: the random part the host keeps is
            from plugbay.isolation.refusals import _digest
            token = "0123456789abcdef." + _digest(error.to_dict())
        error.details["refusal"] = token
        raise error
"""

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

CONFIG = """
[policy.bounds.plugins."acme.relay"]
host-calls-per-second = 5
host-calls-burst = 5
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Host]:
    root = tmp_path_factory.mktemp("refusals")
    plugins = PluginFactory(root / "plugins")
    plugins("acme.relay", RELAY, extra='[events]\nemits = ["relay.big", "relay.small"]\n')
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
    value = getattr(host.plugin("acme.relay").handle, "pid", None)
    assert isinstance(value, int)
    return value


def calm(host: Host) -> None:
    """The relay's rate bound has room again (the rate test used it up)."""
    bucket = host.manager.budgets["acme.relay"].host_calls
    bucket.tokens = bucket.burst


@on_host
async def test_an_oversized_payload_the_host_refused_is_the_hosts_refusal(host: Host) -> None:
    calm(host)
    before = pid(host)
    with pytest.raises(ResourceLimitExceeded) as caught:
        await host.call("acme.relay", "emit_big")
    error = caught.value
    assert error.code == "resource_limit"
    assert error.plugin == "acme.relay"
    assert "over the 65,536-byte bound; the event was refused" in error.message
    assert error.hint == "send a key or an id in the event and keep the data in context.storage"
    assert error.details == {"limit": "event_payload", "relayed_by": "acme.relay"}
    assert "claims" not in str(error)
    assert pid(host) == before  # a refusal passed on replaces no worker
    assert await host.call("acme.neighbour", "ping") == "pong"


@on_host
async def test_host_calls_past_the_rate_bound_are_the_hosts_refusal(host: Host) -> None:
    calm(host)
    with pytest.raises(ResourceLimitExceeded) as caught:
        await host.call("acme.relay", "emit_until_refused")
    error = caught.value
    assert error.message == "over its bound of 5 host calls a second; the call was refused"
    assert error.hint is not None and '[policy.bounds.plugins."acme.relay"]' in error.hint
    assert error.details == {"limit": "host_calls", "relayed_by": "acme.relay"}
    assert host.manager.budgets["acme.relay"].dropped["host_call_rate"] >= 1
    assert await host.call("acme.neighbour", "ping") == "pong"


@on_host
async def test_a_genuine_refusal_passed_off_twice_is_the_plugins_the_second_time(
    host: Host,
) -> None:
    calm(host)
    token = await host.call("acme.relay", "keep_refusal")
    assert token.count(".") == 1
    with pytest.raises(ResourceLimitExceeded):
        await host.call("acme.relay", "raise_kept")  # once: the host's
    with pytest.raises(PluginCallError) as again:
        await host.call("acme.relay", "raise_kept")  # spent: the plugin's own now
    assert again.value.details["claimed"] == "resource_limit"
    assert "the host did not deny or stop anything here" in (again.value.hint or "")


@on_host
@pytest.mark.parametrize("command", ["reword_refusal", "token_on_a_denial"])
async def test_a_genuine_token_on_another_error_is_the_plugins_own(
    host: Host, command: str
) -> None:
    calm(host)
    with pytest.raises(PluginCallError) as caught:
        await host.call("acme.relay", command)
    error = caught.value
    assert error.code == "plugin_raised" and error.plugin == "acme.relay"
    assert error.message.startswith("the plugin raised an error of its own that claims to be")
    assert not isinstance(error, PermissionDenied | ResourceLimitExceeded)
    assert await host.call("acme.neighbour", "ping") == "pong"


@on_host
async def test_a_refusal_passed_on_after_a_flood_of_failing_host_calls_is_the_hosts(
    host: Host,
) -> None:
    # more failing host calls than the host keeps refusals, each one stamped, between
    # the refusal and its propagation: the genuine one is still known, and what the
    # host keeps for the plugin did not grow with the flood
    calm(host)
    with pytest.raises(ResourceLimitExceeded) as caught:
        await host.call("acme.relay", "flood_then_raise", calls=KEPT + 200)
    error = caught.value
    assert "over the 65,536-byte bound; the event was refused" in error.message
    assert error.details == {"limit": "event_payload", "relayed_by": "acme.relay"}
    assert host.manager.budgets["acme.relay"].dropped["host_call_rate"] >= KEPT
    assert host.manager.broker.refusals.kept_for("acme.relay") <= KEPT
    assert await host.call("acme.neighbour", "ping") == "pong"


@on_host
async def test_a_made_up_token_is_the_plugins_own(host: Host) -> None:
    # the shape of a genuine one, even with the digest of the very error it raises
    for token in ("digest", "0123456789abcdef.0123456789abcdef0123456789abcdef", "x", ""):
        with pytest.raises(PluginCallError) as caught:
            await host.call("acme.relay", "made_up", token=token)
        assert caught.value.details["claimed"] == "resource_limit"


def test_an_issued_refusal_is_vouched_for_once_and_only_as_issued() -> None:
    refusals = Refusals()
    hit = ResourceLimitExceeded(
        "the call hit its memory limit",
        plugin="acme.callee",
        details={"limit": "memory", "replace": True},
    )
    sent = refusals.issue("acme.caller", hit)
    assert hit.details == {"limit": "memory", "replace": True}  # the callee's error is kept
    assert "replace" not in sent.details  # passed on, it replaces no worker of the caller's

    def issued(token: str) -> bool:
        return refusals.redeem("acme.caller", token)

    other = sent.to_dict() | {"message": "the call hit its memory limit twice"}
    assert judge_error(other, "acme.caller", issued=issued).code == "plugin_raised"
    judged = judge_error(sent.to_dict(), "acme.caller", issued=issued)
    assert isinstance(judged, ResourceLimitExceeded) and judged.plugin == "acme.callee"
    assert judged.details == {"limit": "memory", "relayed_by": "acme.caller"}
    assert judge_error(sent.to_dict(), "acme.caller", issued=issued).code == "plugin_raised"
    # issued to one plugin, it is not another's to pass on
    again = refusals.issue("acme.caller", hit).to_dict()
    assert TOKEN in again["details"]
    elsewhere = judge_error(again, "acme.other", issued=lambda t: refusals.redeem("acme.other", t))
    assert elsewhere.code == "plugin_raised"


def test_tokens_cannot_be_forged_and_what_the_host_keeps_stays_bounded() -> None:
    refusals = Refusals(kept=8)
    hit = ResourceLimitExceeded("over its bound", plugin="acme.p", details={"limit": "host_calls"})
    first = refusals.issue("acme.p", hit).details[TOKEN]
    flood = [refusals.issue("acme.p", hit).details[TOKEN] for _ in range(10_000)]
    assert refusals.kept_for("acme.p") == 0  # issuing keeps nothing
    serial, _, rest = first.partition("-")
    mac, _, digest = rest.partition(".")
    for forged in (
        f"{int(serial) + 1}-{mac}.{digest}",  # another serial, the same signature
        f"0{serial}-{mac}.{digest}",
        f"{serial}-{'0' * len(mac)}.{digest}",
        f"{serial}-{mac}.{'0' * len(digest)}",  # the signature is for its own error
        f"{serial}-{mac[:-1]}\u00e9.{digest}",
        "0123456789abcdef." + digest,  # the old shape
        "",
    ):
        assert not refusals.redeem("acme.p", forged), forged
    assert not refusals.redeem("acme.other", first)  # issued to one plugin only
    assert refusals.redeem("acme.p", first)  # after 10,000 others: still good, once
    assert not refusals.redeem("acme.p", first)
    # spending many keeps a bounded number of serials; one older than all of them is spent
    assert all(refusals.redeem("acme.p", token) for token in flood[100:120])
    assert refusals.kept_for("acme.p") <= 8
    assert not refusals.redeem("acme.p", flood[0])
    assert refusals.redeem("acme.p", flood[-1])
