"""The host's system events (``runtime.events``): what its log says of a listener that
fails and of a queue that overflows, a flood and a trickle alike."""

from __future__ import annotations

import logging

import pytest

from plugbay import SystemEvent
from plugbay.runtime.events import EventBus


class Clock:
    """The monotonic clock the bus's log pace reads, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def said(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


async def test_a_failing_listener_is_said_once_a_minute_a_flood_and_a_trickle_alike(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """2,500 failures within a minute are one line; the next, a minute on, says how
    many went unsaid; then one failure a minute is said each time."""
    caplog.set_level(logging.WARNING, logger="plugbay.events")
    bus = EventBus()
    bus.clock = clock = Clock()

    async def broken(event: SystemEvent) -> None:
        raise RuntimeError(f"broke on {event.data['n']}")

    bus.listen("acme.broken", 0, (), broken)
    for n in range(2500):
        bus.emit("cache.evicted", n=n)
    await bus.drain()
    for n in range(2500, 2503):  # a trickle: one a minute
        clock.now += 61
        bus.emit("cache.evicted", n=n)
        await bus.drain()
    await bus.close()
    lines = said(caplog, "failed handling")
    assert len(lines) == 4
    assert lines[0].endswith("RuntimeError: broke on 0")
    assert lines[1].endswith(
        "RuntimeError: broke on 2500 (2499 more failed since the last one said, not logged)"
    )
    assert lines[2].endswith("broke on 2501") and lines[3].endswith("broke on 2502")
    assert bus.failures == 2503


async def test_a_full_queue_s_drops_are_said_once_a_minute_a_flood_and_a_trickle_alike(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="plugbay.events")
    bus = EventBus(maxsize=10)
    bus.clock = clock = Clock()
    heard: list[int] = []

    async def hear(event: SystemEvent) -> None:
        heard.append(int(event.data["n"]))

    bus.listen("acme.hears", 0, (), hear)
    for n in range(2000):  # nothing is delivered before the loop turns: 1,990 dropped
        bus.emit("cache.evicted", n=n)
    for n in range(2000, 2002):  # a trickle: one a minute
        clock.now += 61
        bus.emit("cache.evicted", n=n)
    await bus.drain()
    await bus.close()
    lines = said(caplog, "event queue full")
    assert lines == [
        "event queue full (10): dropped cache.evicted",
        "event queue full (10): dropped cache.evicted "
        "(1989 more dropped since the last one said, not logged)",
        "event queue full (10): dropped cache.evicted",
    ]
    assert bus.dropped == 1992 and heard == list(range(1992, 2002))
