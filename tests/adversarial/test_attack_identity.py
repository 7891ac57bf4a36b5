"""Identity from the channel: what a worker sends is its own plugin's, whatever it says."""

from __future__ import annotations

import asyncio
import time

import pytest

from plugbay import PermissionDenied, PlugbayError, PluginCallError
from tests.adversarial.conftest import Arena, victim_logs

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


async def until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + 10  # a hang guard, not a timing
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"waited in vain for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module", params=["process", "ray"])
def attackers_on(request: pytest.FixtureRequest) -> str:
    """These attacks come from a sandboxed worker here and from a Ray node's agent."""
    return str(request.param)


def security_events(arena: Arena) -> int:
    return sum(n for kind, n in arena.host.events.counts.items() if kind.startswith("security."))


@pytest.mark.parametrize("command", ["log_as", "raw_log_as"])
async def test_a_record_under_another_plugins_logger_is_the_senders(
    arena: Arena, command: str
) -> None:
    host = arena.host
    victim_before = len(victim_logs(host))
    events_before = security_events(arena)
    mine_before = len(host.logs("acme.attacker", limit=10_000))
    await host.call("acme.attacker", command, other="acme.victim")
    await until(lambda: len(host.logs("acme.attacker", limit=10_000)) > mine_before, "the record")
    record = host.logs("acme.attacker", limit=10_000)[-1]
    assert record["plugin"] == "acme.attacker"
    assert record["logger"] == "plugbay.plugin.acme.attacker"
    assert record["fields"]["claimed_logger"] == "plugbay.plugin.acme.victim"  # what it claimed
    assert record["fields"]["source"] == "plugin"
    assert "security" not in record["fields"]  # kept, renamed: never a host security record
    assert record["fields"]["plugin.security"] is True
    assert len(victim_logs(host)) == victim_before
    assert security_events(arena) == events_before  # a log record makes no security event
    assert await host.call("acme.neighbour", "ping") == "pong"


async def test_a_plugin_raising_permission_denied_is_its_own_error(arena: Arena) -> None:
    host = arena.host
    events_before = security_events(arena)
    with pytest.raises(PlugbayError) as caught:
        await host.call("acme.attacker", "fake_denial")
    error = caught.value
    assert not isinstance(error, PermissionDenied)
    assert isinstance(error, PluginCallError) and error.code == "plugin_raised"
    assert error.plugin == "acme.attacker"  # not the victim it named
    assert error.details["claimed"] == "permission_denied"
    assert "not the host's" in (error.hint or "")
    assert security_events(arena) == events_before
    assert await host.call("acme.victim", "ping") == "pong"


async def test_a_claimed_limit_hit_is_the_plugins_error_and_its_worker_stays(
    arena: Arena,
) -> None:
    host = arena.host
    pid = host.plugin("acme.attacker").handle.pid  # type: ignore[union-attr]
    with pytest.raises(PluginCallError) as caught:
        await host.call("acme.attacker", "fake_limit")
    assert caught.value.details["claimed"] == "resource_limit"
    assert host.plugin("acme.attacker").handle.pid == pid  # type: ignore[union-attr]


async def test_a_message_imitating_a_denial_is_shown_as_the_plugins_exception(
    arena: Arena,
) -> None:
    with pytest.raises(PluginCallError) as caught:
        await arena.host.call("acme.attacker", "imitate")
    assert caught.value.plugin == "acme.attacker"
    assert "RuntimeError" in str(caught.value)


async def test_forged_security_frames_are_the_senders_reports_bounded(arena: Arena) -> None:
    host = arena.host
    assert host.state is not None
    victim_history = len(host.state.history("acme.victim", limit=10_000))
    before = len(host.state.history("acme.attacker", limit=10_000))
    await host.call("acme.attacker", "forge_security", count=50, size=4096, victim="acme.victim")
    assert await host.call("acme.attacker", "nap") is None  # every frame before it was read
    recorded = host.state.history("acme.attacker", limit=10_000)[: -before or None]
    forged = [
        e for e in recorded if e.action == "security.denied" and "x" * 100 in (e.reason or "")
    ]
    assert forged, "the reports are kept as the attacker's"
    assert len(forged) <= 25  # the burst, never all 50
    for event in forged:
        assert len(event.reason or "") < 4096
        assert "[reported by its worker]" in (event.reason or "")
    assert len(host.state.history("acme.victim", limit=10_000)) == victim_history
    assert host.manager.budgets["acme.attacker"].dropped["security_rate"] > 0
    assert await host.call("acme.neighbour", "ping") == "pong"
