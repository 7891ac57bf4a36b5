"""The heartbeat (isolation/heartbeat.py): idle workers rest, unpinged; a call wakes them,
and a worker that hangs on that call is still found within its timeout."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from plugbay import PluginCrashed
from plugbay.isolation.heartbeat import Beat, Pulse, held_by, hung_error, pulse_for
from plugbay.isolation.process import ProcessHandle
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.test_process import stuck_worker, supervised, wait_for_state


class Member:
    """A worker's handle as the pulse sees it (the pulse's own behaviour is under test)."""

    def __init__(self) -> None:
        self.beat = Beat()
        self.beat.idle_after = 0.05
        self.beat.interval = 0.02
        self.pending = False
        self.pings = 0
        self.visits = 0
        self.alive = True

    def pulse(self, now: float, stalled: float) -> bool:
        self.visits += 1
        if not self.alive:
            return False
        due = self.beat.due(now, stalled, self._busy(now))
        if due == "ping":
            self.pings += 1
            self.beat.pinged_at = now
            self.beat.answered(now)  # an answer at once
        return True

    def _busy(self, now: float) -> bool:
        return self.beat.busy(now, self.pending)


async def until(check: object, what: str, seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


async def test_an_idle_member_rests_unpinged_and_a_request_wakes_it() -> None:
    pulse = Pulse(asyncio.get_running_loop(), tick=0.01)
    pulse.sweep = 0.2
    member = Member()
    loop = asyncio.get_running_loop()
    member.beat.last_pong = member.beat.last_used = loop.time()
    pulse.join(member)
    await until(lambda: pulse.resting == 1, "the idle member rests")
    pings, visits = member.pings, member.visits
    await asyncio.sleep(0.5)  # two sweeps, fifty ticks
    assert member.pings == pings  # resting: no ping (the idle ping is a minute away)
    assert 1 <= member.visits - visits <= 4  # visited at the sweeps only, not every tick
    # a request wakes it: ticked again, and pinged at the busy cadence
    member.pending = True
    member.beat.last_used = loop.time()
    assert pulse.resting == 0
    await until(lambda: member.pings > pings, "a ping once awake")
    # a member that needs no more ticks (its worker is gone) leaves, resting or not
    member.pending = False
    await until(lambda: pulse.resting == 1, "rests again")
    member.alive = False
    await until(lambda: len(pulse) == 0, "the gone member leaves")


async def test_a_pending_call_keeps_a_member_awake_past_idle_after() -> None:
    pulse = Pulse(asyncio.get_running_loop(), tick=0.01)
    member = Member()
    member.pending = True  # a long call in flight: it is there that a hang matters
    member.beat.last_pong = member.beat.last_used = asyncio.get_running_loop().time()
    pulse.join(member)
    await asyncio.sleep(0.3)  # six times idle_after
    assert pulse.resting == 0
    assert member.pings >= 5


@pytest.mark.slow
async def test_a_worker_that_rested_and_hangs_on_its_next_call_is_found_within_seconds(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        handle = await stuck_worker(host)
        handle.beat.idle_after = 0.2
        pulse = pulse_for(asyncio.get_running_loop())
        await until(lambda: handle.beat.wake is not None, "the idle worker rests", 15)
        resting = pulse.resting
        assert resting >= 1
        pong = handle.beat.last_pong
        await asyncio.sleep(1.0)
        assert handle.beat.last_pong == pong  # resting: not pinged
        started = asyncio.get_running_loop().time()
        with pytest.raises(PluginCrashed, match="stopped answering its heartbeat"):
            await host.call("acme.stuck", "block")  # blocks its loop for 30 s
        assert asyncio.get_running_loop().time() - started < 2.5
        await wait_for_state(host, "acme.stuck", "active")
        assert await host.call("acme.stuck", "ping") == "pong"


async def test_a_request_wakes_a_pulse_that_sleeps_while_every_member_rests() -> None:
    loop = asyncio.get_running_loop()
    pulse = Pulse(loop, tick=0.01)
    pulse.sweep = 600.0  # resting members are visited every ten minutes: the pulse sleeps
    member = Member()
    member.beat.last_pong = member.beat.last_used = loop.time()
    pulse.join(member)
    await until(lambda: pulse.resting == 1, "the idle member rests")
    visits, pings = member.visits, member.pings
    await asyncio.sleep(0.2)
    assert member.visits == visits  # nobody is ticked while all rest
    member.pending = True
    member.beat.last_used = loop.time()  # a request: the member and the pulse wake
    await until(lambda: member.pings > pings, "a ping once awake", seconds=5)
    member.alive = False
    await until(lambda: len(pulse) == 0, "the gone member leaves")


@pytest.mark.slow
async def test_a_freshly_started_worker_rests_unpinged_and_its_first_call_still_finds_a_hang(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    # a thousand plugins starting together were each pinged every tick for two seconds
    # after their initialize, as if a caller had just used them
    async with supervised(plugins, tmp_path, restart_backoff=0.1) as host:
        handle = host.plugin("acme.stuck").handle
        assert isinstance(handle, ProcessHandle)
        first_pong = handle.beat.last_pong  # its initialize's answer
        await until(lambda: handle.beat.wake is not None, "the fresh worker rests", 15)
        assert handle.beat.last_pong == first_pong  # never pinged on its way to rest
        assert handle.storage_bytes is not None or not handle.storage.enforced  # looked at once
        started = asyncio.get_running_loop().time()
        with pytest.raises(PluginCrashed, match="stopped answering its heartbeat"):
            await host.call("acme.stuck", "block")  # its first call hangs its loop
        assert asyncio.get_running_loop().time() - started < 2.5
        await wait_for_state(host, "acme.stuck", "active")
        assert await host.call("acme.stuck", "ping") == "pong"


@pytest.mark.slow
def test_a_stopped_host_leaves_no_task_pending_in_the_loop_its_program_closes(
    plugins: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # an application that runs its own loop: start, call, stop, close the loop; the
    # heartbeat's task slept until its next sweep, 30 s away, and was destroyed pending
    plugins("acme.one")
    plugins("acme.two")
    host = Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, inline=[], init_timeout=20
    )
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(host.start())
        assert loop.run_until_complete(host.call("acme.one", "ping")) == "pong from acme.one 1.0.0"
        pulse = pulse_for(loop)
        loop.run_until_complete(until(lambda: pulse.resting == 2, "both workers rest", 30))
        loop.run_until_complete(host.stop())
        pending = [task.get_name() for task in asyncio.all_tasks(loop)]
        beating = len(pulse)
    finally:
        loop.close()
    assert pending == []
    assert beating == 0
    del loop
    gc.collect()
    assert "Task was destroyed but it is pending" not in caplog.text


def test_only_a_def_call_sent_before_the_unanswered_ping_and_within_its_limit_holds_it() -> None:
    """``held_by``: the silence of a worker running a def command is that call's until its
    deadline; a call sent after the ping, an async one, or one past its deadline is not."""
    inline = frozenset({"work", "event:notes.saved"})
    pinged, now = 10.0, 12.0
    # (start, label, deadline, what), as ``Requests.inflight`` keeps them
    work = (9.5, "work", 30.0, "work")
    assert held_by({1: work}, inline, pinged, now) == "work"
    assert held_by({1: (9.5, "event:notes.saved", 15.0, "x")}, inline, pinged, now)
    assert held_by({1: work}, inline, None, now) is None  # no ping out: nothing to excuse
    assert held_by({1: work}, frozenset(), pinged, now) is None  # the worker runs none
    assert held_by({1: (9.5, "ping", 30.0, "ping")}, inline, pinged, now) is None  # async
    assert held_by({1: (9.5, "work", 11.9, "work")}, inline, pinged, now) is None  # past it
    # behind the ping in the socket: it cannot be what keeps the ping unanswered, so new
    # calls never keep a hung worker alive
    assert held_by({1: (10.5, "work", 30.0, "work")}, inline, pinged, now) is None
    assert held_by({1: (10.5, "work", 30.0, "w"), 2: work}, inline, pinged, now) == "work"


def test_a_def_call_just_answered_leaves_its_worker_a_timeout_to_answer_the_ping() -> None:
    """The worker reads the ping only once its def call returns, so the pong comes behind
    the call's answer: between the two, the silence is still the call's, for the
    heartbeat's timeout from when the call was last seen holding it, and no longer."""
    beat = Beat()
    beat.pinged_at = 10.0
    assert beat.held(10.9, "work") == "work"  # seen holding it, 0.9 s into the silence
    assert beat.held(11.2, None) == "work"  # answered; its pong not read yet
    assert beat.held(11.9, None) == "work"
    assert beat.held(11.95, None) is None  # a timeout after it was last seen: a hang
    # a later ping is not excused by a call that held an earlier one
    beat.holder, beat.pinged_at = (10.0, 10.9, "work"), 11.0
    assert beat.held(11.2, None) is None
    # the host's own loop stalled 3 s: not the worker's silence, nor the end of its grace
    beat.holder, beat.pinged_at = (10.0, 10.9, "work"), 10.0
    assert beat.due(14.0, 3.0, busy=True) is None and beat.held(14.0, None) == "work"
    assert beat.held(14.0, "work") == "work" and beat.holder == (13.0, 14.0, "work")
    beat.answered(15.0)  # the pong
    assert beat.held(15.1, None) is None


def test_a_heartbeat_kill_says_whether_a_def_command_overran_its_limit() -> None:
    plain = hung_error("acme.p", 42, 1.04)
    assert "(1.0 s without a reply) and was killed" in plain.message
    assert "async def" in (plain.hint or "") and plain.details["pid"] == 42
    overran = hung_error("acme.p", 42, 1.5, "stall")
    assert "while 'stall' ran past its time limit, and was killed" in overran.message
    assert "blocking=True" in (overran.hint or "") and overran.details["command"] == "stall"
