"""Canary (plugbay.runtime.canary): a share of live calls on a new version in its own
sandboxed worker, promoted or rolled back on its figures, with no person in the loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from plugbay import PlugbayError, PluginCallError, PluginStateError
from plugbay.runtime.canary import RUN, CanarySettings, parse_share, parse_window, periods
from plugbay.runtime.host import Host
from tests._trials import calc, ended
from tests._waiting import until
from tests.conftest import PluginFactory

CALLERS = 8


def _spread(i: int) -> int:
    return (i * 37) % 101


def _failing(i: int) -> int:
    """An ``a`` that 1.1.0 (the wrong one) raises on, whichever call of the canary's."""
    return 7 * (i % 13) + 3


async def _load(
    host: Host, calls: int, a_of: Callable[[int], int] = _spread
) -> tuple[int, list[BaseException]]:
    """``CALLERS`` callers at once, ``calls`` in all: (answers, failures)."""
    answered = 0
    failures: list[BaseException] = []

    async def caller(offset: int) -> None:
        nonlocal answered
        for i in range(offset, calls, CALLERS):
            a = a_of(i)
            try:
                assert await host.call("acme.calc", "add", a=a, b=1) in (a + 1, a + 2)
                answered += 1
            except PlugbayError as exc:
                failures.append(exc)

    await asyncio.gather(*(caller(k) for k in range(CALLERS)))
    return answered, failures


async def test_a_wrong_canary_is_rolled_back_within_its_window_and_only_its_share_fails(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host(inline=[]) as host:
        host.install(calc(tmp_path / "src", "1.1.0", wrong=True))
        host.trials.record("acme.calc")  # the recorder hears both versions
        settings = CanarySettings(share=0.1, window_calls=400, min_calls=5)
        await host.trials.canary("acme.calc", settings=settings)
        canary = host.trials.canaries["acme.calc"]
        assert canary.handle is not None and canary.handle.pid is not None
        worker = psutil.Process(canary.handle.pid)
        # every call of the canary's fails (which calls are its turns depends on how the
        # callers interleave: spread inputs could miss the failing ones)
        answered, failures = await _load(host, 400, _failing)
        summary = await host.trials.wait_canary("acme.calc", timeout=30)
        assert summary["state"] == "rolled-back"
        figures = summary["figures"]
        # decided inside the window, on the monitor's figures of both versions
        assert figures["window_calls"] < 400
        assert figures["new"]["errors"] >= 1 and figures["old"]["errors"] == 0
        assert "error rate" in summary["reason"]
        # no call lost; every failure a caller saw was the canary's own answer
        assert answered + len(failures) == 400
        assert all(isinstance(f, PluginCallError) and "cannot add" in str(f) for f in failures)
        assert len(failures) <= canary.new.errors <= canary.new.calls
        assert canary.new.calls <= 0.1 * 400 + 1
        # the serving version serves on, alone; the canary's worker is gone
        assert host.plugin("acme.calc").version == "1.0.0"
        assert await _load(host, 40) == (40, [])
        # killed as the canary retired; its exit is the kernel's, a moment later
        await until(lambda: ended(worker), "the canary's worker ended", seconds=10)
        # in the history with the deciding figures, and as an alert
        event = next(e for e in host.history("acme.calc", limit=50) if e.action == "canary")
        assert (event.action, event.result) == ("canary", "rolled-back")
        assert event.details is not None and event.details["new"]["errors"] >= 1
        alerts = host.alerts("acme.calc")
        assert [a["rule"] for a in alerts] == ["canary-rollback"]
        assert alerts[0]["details"]["figures"]["new"]["version"] == "1.1.0"
        recorded = [json.loads(line) for line in host.trials.recording("acme.calc").splitlines()]
        versions = [c["version"] for c in recorded[1:]]
        assert versions.count("1.1.0") == canary.new.calls and "1.0.0" in versions


async def test_an_error_before_enough_calls_is_judged_once_there_are_enough(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    """The canary's first run fails, too few calls to judge; the end of the run that
    makes them enough rolls it back, without waiting for another error or the tick."""
    calc(plugins.root / "calc", "1.0.0")
    async with make_host() as host:
        host.install(calc(tmp_path / "src", "1.1.0", wrong=True))
        settings = CanarySettings(share=1.0, window_calls=10**6, min_calls=5)
        await host.trials.canary("acme.calc", settings=settings)
        canary = host.trials.canaries["acme.calc"]
        assert await host.call("acme.calc", "add", a=3, b=1) == 4  # the serving one's turn
        for _ in range(RUN):  # the canary's first run: every call fails
            with pytest.raises(PluginCallError, match="cannot add 3"):
                await host.call("acme.calc", "add", a=3, b=1)
        assert canary.state == "running"  # 4 calls: fewer than min_calls
        for _ in range(3 * RUN):  # right answers from here on
            assert await host.call("acme.calc", "add", a=1, b=1) == 2
        summary = await host.trials.wait_canary("acme.calc", timeout=30)
        assert summary["state"] == "rolled-back" and "error rate" in summary["reason"]
        assert summary["figures"]["new"]["calls"] == 2 * RUN  # decided as its 2nd run ended
        assert host.plugin("acme.calc").version == "1.0.0"


async def test_a_canary_takes_its_exact_share_and_every_call_stays_counted(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    """A running sum, not a coin, and exact while calls overlap (8 callers, a sandboxed
    plugin); the serving version keeps its route, and when the canary ends its calls
    join the plugin's figures."""
    calc(plugins.root / "calc", "1.0.0")
    async with make_host(inline=[]) as host:
        host.install(calc(tmp_path / "src", "1.2.0"))
        serving = host.manager.route_of("acme.calc")
        settings = CanarySettings(share=0.3, window_calls=10**6)
        await host.trials.canary("acme.calc", settings=settings)
        canary = host.trials.canaries["acme.calc"]
        assert host.manager.route_of("acme.calc") is serving
        assert await _load(host, 400) == (400, [])
        assert abs(canary.new.calls - 0.3 * 400) <= 2 * RUN, canary.new.calls
        await host.trials.stop_canary("acme.calc")
        assert host.manager.route_of("acme.calc") is serving
        assert await _load(host, 40) == (40, [])
        record = host.plugin("acme.calc")
        assert record.metrics is not None
        assert record.metrics.commands["add"].calls == 440


async def test_a_slow_canary_is_rolled_back_on_its_latency(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    slow = calc(tmp_path / "src", "1.2.0")
    code = (slow / "main.py").read_text()
    (slow / "main.py").write_text(
        "import time\n" + code.replace("return a + b", "time.sleep(0.02)\n        return a + b")
    )
    async with make_host() as host:
        host.install(slow)
        settings = CanarySettings(share=0.1, window_calls=2000, min_calls=5)
        await host.trials.canary("acme.calc", settings=settings)
        answered, failures = await _load(host, 600)
        summary = await host.trials.wait_canary("acme.calc", timeout=30)
        assert (answered, failures) == (600, [])  # slow, not wrong: every caller answered
        assert summary["state"] == "rolled-back"
        assert "mean latency" in summary["reason"] and "above the allowed 2x" in summary["reason"]
        figures = summary["figures"]
        assert figures["new"]["mean_seconds"] > 2 * figures["old"]["mean_seconds"]
        assert figures["window_calls"] < 2000
        assert host.plugin("acme.calc").version == "1.0.0"


async def test_a_good_canary_is_promoted_by_a_swap_after_its_window(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host(inline=[]) as host:
        await host.call("acme.calc", "remember", text="kept")
        host.install(calc(tmp_path / "src", "1.2.0"))
        settings = CanarySettings(share=0.25, window_calls=120, min_calls=5)
        await host.trials.canary("acme.calc", settings=settings)
        answered, failures = await _load(host, 160)
        summary = await host.trials.wait_canary("acme.calc", timeout=60)
        assert (answered, failures) == (160, [])
        assert summary["state"] == "promoted", summary["reason"]
        assert summary["figures"]["new"]["calls"] >= 25
        assert host.plugin("acme.calc").version == "1.2.0"
        assert await host.call("acme.calc", "recalled") == 1  # the data went along
        actions = [(e.action, e.result) for e in host.history("acme.calc", limit=50)]
        assert ("canary", "promoted") in actions and ("upgrade", "ok") in actions
        assert host.alerts("acme.calc") == []


async def test_a_time_window_with_too_few_calls_rolls_back_rather_than_guess(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host() as host:
        host.install(calc(tmp_path / "src", "1.2.0"))
        settings = CanarySettings(share=0.5, window_calls=None, window_seconds=0.3)
        await host.trials.canary("acme.calc", settings=settings)
        await host.call("acme.calc", "add", a=1, b=1)
        summary = await host.trials.wait_canary("acme.calc", timeout=30)
        assert summary["state"] == "rolled-back"
        assert "fewer than the 5 needed" in summary["reason"]
        assert host.plugin("acme.calc").version == "1.0.0"


async def test_canary_settings_are_checked_before_anything_starts(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host() as host:
        host.install(calc(tmp_path / "src", "1.2.0"))
        with pytest.raises(PlugbayError, match="above 0%"):
            await host.trials.canary("acme.calc", settings=CanarySettings(share=0))
        with pytest.raises(PlugbayError, match="give a window"):
            await host.trials.canary(
                "acme.calc", settings=CanarySettings(window_calls=None, window_seconds=None)
            )
        await host.trials.canary("acme.calc")
        with pytest.raises(PluginStateError, match="a canary running already"):
            await host.trials.shadow("acme.calc")
        stopped = await host.trials.stop_canary("acme.calc")
        assert stopped["state"] in ("rolling-back", "rolled-back")
        assert (await host.trials.wait_canary("acme.calc"))["state"] == "rolled-back"
    assert parse_share("10%") == pytest.approx(0.1) and parse_share("0.25") == 0.25
    # one cycle of the canary's periods holds exactly its share of the calls
    assert periods(0.1) == [10] and periods(0.3) == [4, 3, 3] and periods(1.0) == [1]
    for share in (0.05, 0.25, 1 / 3, 0.5, 0.75):
        lengths = periods(share)
        assert len(lengths) / sum(lengths) == pytest.approx(share, abs=1e-4)
    with pytest.raises(PlugbayError, match=r"at least 0\.01%"):
        CanarySettings(share=0.00001).check("acme.calc")
    assert parse_window("200") == (200, None) and parse_window("5m") == (None, 300.0)
    with pytest.raises(PlugbayError, match="not a window"):
        parse_window("soon")
    with pytest.raises(PlugbayError, match="at most 100%"):
        parse_share("150%")
