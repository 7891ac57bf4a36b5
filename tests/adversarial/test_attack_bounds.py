"""Bounded host resources: the issue's floods, from a real sandboxed worker.

These are correctness bounds (what the host keeps), not timings: the neighbour's
latency under the same floods is measured in ``bench/trust.py``.
"""

from __future__ import annotations

import asyncio
import gc

import psutil
import pytest

from plugbay import PlugbayError, PluginCrashed
from tests.adversarial.conftest import Arena, victim_logs

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

MiB = 1 << 20


def db_bytes(arena: Arena) -> int:
    return sum(p.stat().st_size for p in arena.state_dir.glob("state.db*") if p.is_file())


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def persist(arena: Arena) -> None:
    """What the monitor writes to the state database every few seconds, now."""
    monitor = arena.host.monitor
    assert monitor is not None
    await asyncio.to_thread(monitor.logs.persist, arena.host.state)


@pytest.fixture(scope="module", params=["process", "ray"])
def attackers_on(request: pytest.FixtureRequest) -> str:
    """These attacks come from a sandboxed worker here and from a Ray node's agent."""
    return str(request.param)


async def test_the_issues_floods_stay_within_the_memory_and_database_bounds(
    arena: Arena,
) -> None:
    host = arena.host
    # warm up: the first frame of each kind allocates what the host keeps anyway
    await host.call("acme.attacker", "flood_logs", count=2, size=MiB)
    await host.call("acme.attacker", "forge_security", count=2, size=MiB, victim="acme.victim")
    await persist(arena)
    memory_before, db_before = rss(), db_bytes(arena)
    victim_before = len(victim_logs(host))

    neighbour = asyncio.create_task(_keep_calling(arena))
    # On a loaded machine the attacker's own worker may miss its heartbeat while it
    # floods and be replaced: that stops the flood, never the host. Each flood is then
    # sent again by its new worker, until it went through.
    await flood(arena, "flood_logs", count=16, size=8 * MiB)  # 128 MiB
    await flood(arena, "forge_security", count=100, size=MiB, victim="acme.victim")
    await flood(arena, "flood_metrics", series=20_000)  # over the frame bound
    await flood(arena, "flood_metrics", series=2_000)  # under the frame bound
    answered = await _stop(neighbour)
    await persist(arena)

    grown_memory, grown_db = rss() - memory_before, db_bytes(arena) - db_before
    assert grown_memory < 50 * MiB, f"the host grew by {grown_memory / MiB:.1f} MiB"
    assert grown_db < 10 * MiB, f"the state database grew by {grown_db / MiB:.1f} MiB"
    assert answered > 0  # the neighbour kept answering through it all

    # what went over was cut or dropped, counted by reason, never kept whole
    dropped = host.manager.budgets["acme.attacker"].dropped
    assert dropped["log_oversize"] >= 16  # 8 MiB records: dropped unread, counted
    assert dropped["security_oversize"] >= 100
    assert dropped["metric_oversize"] >= 1 and dropped["metric_series"] >= 2_000 - 500
    metrics = host.render_metrics()
    assert b'plugbay_plugin_dropped_total{plugin="acme.attacker",reason="metric_series"}' in metrics
    assert not [
        r for r in host.logs("acme.attacker", limit=10_000) if r["message"].startswith("flood ")
    ]
    assert len(victim_logs(host)) == victim_before
    assert await host.call("acme.victim", "secret") == "victim-secret-42"


async def test_a_record_over_its_fields_bound_is_cut_and_kept(arena: Arena) -> None:
    host = arena.host
    await host.call("acme.attacker", "flood_logs", count=3, size=4096)  # ~70 KiB of fields
    assert await host.call("acme.attacker", "nap") is None
    records = [
        r for r in host.logs("acme.attacker", limit=10_000) if r["message"].startswith("flood ")
    ]
    assert len(records) >= 3
    assert all(len(repr(r["fields"])) < 20_000 for r in records)
    assert "cut" in repr(records[-1]["fields"])
    assert host.manager.budgets["acme.attacker"].dropped["log_fields_truncated"] >= 3


async def test_a_burst_of_host_calls_past_the_bound_is_refused_and_counted(
    arena: Arena,
) -> None:
    host = arena.host
    outcome = await host.call("acme.attacker", "flood_calls", count=200)
    # at most host-calls-in-flight (64) run at once; the rest are refused at once
    assert outcome.get("ok", 0) >= 1
    assert sum(n for k, n in outcome.items() if k != "ok") >= 100, outcome
    assert host.manager.budgets["acme.attacker"].dropped["host_calls_in_flight"] >= 100
    assert await host.call("acme.neighbour", "ping") == "pong"


async def test_a_frame_over_the_plugins_bound_replaces_its_worker_only(arena: Arena) -> None:
    host = arena.host
    handle = host.plugin("acme.attacker").handle
    assert handle is not None
    channel = handle._channel  # type: ignore[attr-defined]
    channel.max_frame = 2 * MiB  # as if [policy.bounds] frame-bytes were 2 MiB
    try:
        with pytest.raises(PlugbayError):
            await host.call("acme.attacker", "flood_logs", count=1, size=4 * MiB)
    finally:
        channel.max_frame = 16 * MiB
    assert await host.call("acme.neighbour", "ping") == "pong"
    assert await host.call("acme.victim", "ping") == "pong"


async def flood(arena: Arena, command: str, **params: object) -> None:
    host = arena.host
    for _ in range(5):
        try:
            await host.call("acme.attacker", command, **params)
            assert await host.call("acme.attacker", "nap") is None  # every frame was read
            return
        except PluginCrashed:
            await active(arena, "acme.attacker")
    raise AssertionError(f"{command} never went through")


async def active(arena: Arena, plugin_id: str) -> None:
    async with asyncio.timeout(60):  # a hang guard, not a timing
        while True:
            if str(arena.host.plugin(plugin_id).state) == "active":
                return
            await asyncio.sleep(0.02)


async def _keep_calling(arena: Arena) -> int:
    answered = 0
    try:
        while True:
            assert await arena.host.call("acme.neighbour", "ping") == "pong"
            answered += 1
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        return answered


async def _stop(task: asyncio.Task[int]) -> int:
    task.cancel()
    return await task
