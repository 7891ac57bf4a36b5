"""Capability-checked host calls: a plugin reaches only what it declared and was granted.

Each attack is made by a real sandboxed worker; each test checks the attacker is refused
with a PermissionDenied that says what to declare or grant, a security event names the
attacker, the victim's data and logs are untouched, and the neighbour keeps answering.
"""

from __future__ import annotations

import pytest

from plugbay import PermissionDenied, PlugbayError
from tests.adversarial.conftest import Arena, victim_logs, worker_pid

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module", params=["process", "ray"])
def attackers_on(request: pytest.FixtureRequest) -> str:
    """These attacks come from a sandboxed worker here and from a Ray node's agent."""
    return str(request.param)


def denials(arena: Arena, plugin_id: str) -> list[str]:
    assert arena.host.state is not None
    return [
        e.reason or ""
        for e in arena.host.state.history(plugin_id, limit=500)
        if e.action == "security.denied"
    ]


async def unharmed(arena: Arena, victim_before: int) -> None:
    host = arena.host
    assert await host.call("acme.neighbour", "ping") == "pong"
    assert await host.call("acme.victim", "secret") == "victim-secret-42"
    assert len(victim_logs(host)) == victim_before  # nothing was written in its name


async def test_a_raw_host_call_to_an_undeclared_plugin_is_refused(arena: Arena) -> None:
    host = arena.host
    before, events = len(victim_logs(host)), len(denials(arena, "acme.attacker"))
    with pytest.raises(PermissionDenied) as caught:
        await host.call(
            "acme.attacker", "raw_call", target="acme.victim", command="secret", params={}
        )
    error = caught.value
    assert error.plugin == "acme.attacker" and error.details["layer"] == "broker"
    assert "victim-secret-42" not in str(error)
    assert error.details["declare"] == '[dependencies] "acme.victim" = "RANGE"'
    assert "[dependencies]" in (error.hint or "")
    assert len(denials(arena, "acme.attacker")) > events
    assert any("acme.victim.secret" in d for d in denials(arena, "acme.attacker"))
    await unharmed(arena, before)


async def test_require_of_an_undeclared_service_is_refused(arena: Arena) -> None:
    host = arena.host
    before = len(victim_logs(host))
    with pytest.raises(PermissionDenied) as caught:
        await host.call("acme.attacker", "require", name="vault", command="secret")
    assert "[services] requires = { vault" in (caught.value.hint or "")
    await unharmed(arena, before)


async def test_a_plugin_id_as_a_service_name_reaches_nothing(arena: Arena) -> None:
    host = arena.host
    before = len(victim_logs(host))
    with pytest.raises(PlugbayError) as caught:
        await host.call("acme.attacker", "require", name="acme.victim", command="secret")
    assert "victim-secret-42" not in str(caught.value)
    await unharmed(arena, before)


async def test_a_declared_dependency_outside_its_range_is_refused(arena: Arena) -> None:
    # acme.declared declares "acme.victim" = "^2.0" (optional); 1.0.0 is loaded
    with pytest.raises(PermissionDenied) as caught:
        await arena.host.call(
            "acme.declared", "raw_call", target="acme.victim", command="secret", params={}
        )
    assert "^2.0" in str(caught.value) and caught.value.details["layer"] == "broker"
    await unharmed(arena, len(victim_logs(arena.host)))


@pytest.mark.parametrize(
    ("command", "params", "permission"),
    [
        ("trail", {}, "host:audit-read"),
        ("verify", {}, "host:audit-read"),
        (
            "record",
            {"kind": "login", "detail": "forged", "plugin": "acme.victim"},
            "host:audit-write",
        ),
    ],
)
async def test_the_audit_trail_needs_a_granted_permission(
    arena: Arena, command: str, params: dict[str, object], permission: str
) -> None:
    host = arena.host
    trail_before = await host.call("core.security", "trail")
    with pytest.raises(PermissionDenied) as caught:
        await host.call(
            "acme.declared", "raw_call", target="core.security", command=command, params=params
        )
    error = caught.value
    assert error.details["permission"] == permission
    # the hint is the exact command that approves it (the manifest asks for it)
    assert f"'plugbay grant acme.declared {permission}'" in (error.hint or "")
    added = (await host.call("core.security", "trail"))[len(trail_before) :]
    # only the host's own record of the refusal was added: nothing the plugin wrote
    assert added and all(e["kind"] == "security.denied" for e in added), added
    assert all("acme.declared" in repr(e) and "acme.victim" not in repr(e) for e in added), added


async def test_an_undeclared_plugin_cannot_even_ask_for_the_audit_trail(arena: Arena) -> None:
    with pytest.raises(PermissionDenied) as caught:
        await arena.host.call(
            "acme.attacker", "raw_call", target="core.security", command="trail", params={}
        )
    assert "[dependencies]" in (caught.value.hint or "")


async def test_other_plugins_logs_and_the_hosts_state_need_a_permission(arena: Arena) -> None:
    host = arena.host
    before = len(victim_logs(host))
    for target, command in (("service:logging@*", "tail"), ("service:plugbay.host@*", "plugins")):
        with pytest.raises(PermissionDenied) as caught:
            await host.call("acme.attacker", "raw_call", target=target, command=command, params={})
        assert "victim-secret" not in str(caught.value)
    with pytest.raises(PermissionDenied) as caught:
        await host.call("acme.attacker", "require", name="plugbay.host", command="plugins")
    assert caught.value.details["permission"] == "host:state-read"
    assert "plugbay grant acme.attacker host:state-read" in (caught.value.hint or "")
    await unharmed(arena, before)


async def test_a_flood_of_refused_calls_is_bounded_and_the_neighbour_answers(
    arena: Arena,
) -> None:
    host = arena.host
    assert host.state is not None
    rows_before = len(host.state.history("acme.attacker", limit=10_000))
    for _ in range(200):
        with pytest.raises(PermissionDenied):
            await host.call(
                "acme.attacker", "raw_call", target="acme.victim", command="ping", params={}
            )
    kept = len(host.state.history("acme.attacker", limit=10_000)) - rows_before
    # every refusal is refused; the events kept are bounded by the security rate
    assert kept < 60, kept
    dropped = host.manager.budgets["acme.attacker"].dropped["security_rate"]
    assert dropped > 0
    assert b'plugbay_plugin_dropped_total{plugin="acme.attacker",reason="security_rate"}' in (
        host.render_metrics()
    )
    assert await host.call("acme.neighbour", "ping") == "pong"


async def test_an_inline_plugin_gets_the_same_check_at_context_services(
    arena: Arena, tmp_path: object
) -> None:
    from pathlib import Path

    from plugbay.runtime.host import Host
    from tests.conftest import PluginFactory

    base = Path(str(tmp_path))
    plugins = PluginFactory(base / "plugins")
    plugins("acme.provider", extra='[services]\nprovides = { vault = "1.0.0" }\n')
    plugins(
        "acme.careless",
        """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def use(self) -> str:
        self.context.services.require("vault")
        return "reached"
""",
    )
    async with Host(
        plugins.root, state_dir=base / "state", entry_points=False, inline=["*"]
    ) as host:
        with pytest.raises(PermissionDenied) as caught:
            await host.call("acme.careless", "use")
        assert "[services] requires = { vault" in (caught.value.hint or "")
        assert host.state is not None
        assert any(
            e.action == "security.denied" for e in host.state.history("acme.careless", limit=20)
        )
    assert worker_pid(arena.host, "acme.neighbour")
