"""Bisect (plugbay.runtime.bisect): the plugin, or the version, that makes a check fail,
found by halving with every dependency kept, and the host put back as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay import PlugbayError
from plugbay.runtime.bisect import bisect_plugins, bisect_versions, call_check
from plugbay.runtime.host import Host
from tests._trials import calc
from tests.conftest import PluginFactory

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "{answer}"
"""
N = 32
CULPRIT = "acme.p21"


def _fleet(plugins: PluginFactory) -> None:
    """32 plugins in chains of four (each needs the one before it in its chain)."""
    for i in range(N):
        pid = f"acme.p{i:02d}"
        extra = f'[dependencies]\n"acme.p{i - 1:02d}" = "^1"\n' if i % 4 else ""
        answer = "bonk" if pid == CULPRIT else "pong"
        plugins(pid, PING.format(answer=answer), extra=extra)


def _active(host: Host) -> dict[str, str | None]:
    return {r.id: r.version for r in host.plugins() if str(r.state) == "active"}


async def test_bisect_finds_the_culprit_among_32_plugins_in_6_checks_and_restores_the_host(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    _fleet(plugins)
    async with make_host(inline=[], init_timeout=30) as host:
        before = _active(host)
        assert len(before) == N
        assert {host.plugin(p).isolation for p in before} == {"process"}
        seen: list[dict[str, Any]] = []
        sets: list[set[str]] = []

        async def every_plugin_answers() -> tuple[bool, str]:
            """The host's smoke test: every active plugin answers its ping."""
            active = set(_active(host))
            sets.append(active)
            wrong = [p for p in sorted(active) if await host.call(p, "ping") != "pong"]
            return not wrong, f"wrong: {', '.join(wrong)}" if wrong else "all answer"

        result = await bisect_plugins(host.trials.bisect, every_plugin_answers, seen.append)
        assert result.culprit == CULPRIT, result.found
        assert result.checks <= 6 and len(seen) == result.checks
        assert [s["check"] for s in seen] == list(range(1, result.checks + 1))
        # every step kept every dependency: each active plugin's chain below it is active
        for active in sets:
            for pid in active:
                i = int(pid[-2:])
                assert all(f"acme.p{j:02d}" in active for j in range(i - i % 4, i)), pid
        # put back as it was: the same plugins, the same versions, nothing disabled
        assert result.restored and result.problems == []
        assert _active(host) == before
        assert host.state is not None and host.state.disabled() == {}


async def test_bisect_with_a_call_check_keeps_the_checked_plugin_and_what_it_needs(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    _fleet(plugins)
    async with make_host(init_timeout=30) as host:
        before = _active(host)

        async def call(pid: str, command: str, params: dict[str, Any]) -> Any:
            return await host.call_with(pid, command, params)

        # the check is about p21 itself (it needs p20): both stay, no other plugin is blamed
        check = call_check(call, "acme.p21", "ping", {}, "pong")
        seen: list[dict[str, Any]] = []
        result = await bisect_plugins(host.trials.bisect, check, seen.append, keep=["acme.p21"])
        assert result.culprit is None
        assert "only acme.p20, acme.p21 active" in result.found, result.found
        assert seen[-1]["active"] == 2  # the last check: the kept pair alone
        assert _active(host) == before


async def test_bisect_finds_the_version_that_broke_a_plugin_and_serves_the_old_one_again(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host(inline=[]) as host:
        await host.call("acme.calc", "remember", text="kept")
        for version, wrong in (("1.1.0", False), ("1.2.0", True), ("1.3.0", True)):
            host.install(calc(tmp_path / version, version, wrong=wrong))
        await host.upgrade("acme.calc", "1.3.0")

        async def call(pid: str, command: str, params: dict[str, Any]) -> Any:
            return await host.call_with(pid, command, params)

        steps: list[dict[str, Any]] = []
        check = call_check(call, "acme.calc", "add", {"a": 5, "b": 1}, "6")
        result = await bisect_versions(host.trials.bisect, "acme.calc", check, steps.append)
        assert result.culprit == "acme.calc 1.2.0", result.found
        assert result.checks <= 4
        assert [s["what"] for s in steps][:2] == ["acme.calc 1.3.0", "acme.calc 1.0.0"]
        assert result.restored and host.plugin("acme.calc").version == "1.3.0"
        assert await host.call("acme.calc", "recalled") == 1  # its state went along each swap


async def test_a_check_that_passes_with_every_plugin_has_nothing_to_find(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.a")
    plugins("acme.b")
    async with make_host() as host:

        async def passes() -> tuple[bool, str]:
            return True, "fine"

        result = await bisect_plugins(host.trials.bisect, passes, lambda step: None)
        assert result.culprit is None and result.checks == 1
        assert "nothing to find" in result.found
        with pytest.raises(PlugbayError, match="no bisect is under way"):
            await host.trials.bisect.activate(["acme.a"])
        assert set(_active(host)) == {"acme.a", "acme.b"}


async def test_a_version_bisect_with_no_bad_version_says_none_fails_and_the_newest_is_good(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host(inline=[]) as host:
        for version in ("1.1.0", "1.2.0"):
            host.install(calc(tmp_path / version, version))
        await host.upgrade("acme.calc", "1.2.0")

        async def call(pid: str, command: str, params: dict[str, Any]) -> Any:
            return await host.call_with(pid, command, params)

        check = call_check(call, "acme.calc", "add", {"a": 5, "b": 1}, "6")
        result = await bisect_versions(host.trials.bisect, "acme.calc", check, lambda step: None)
        assert result.culprit is None and result.checks == 1
        assert result.found.startswith("no version of acme.calc fails the check"), result.found
        assert "it passes with 1.2.0, the version serving and the newest" in result.found
        assert result.restored and host.plugin("acme.calc").version == "1.2.0"
