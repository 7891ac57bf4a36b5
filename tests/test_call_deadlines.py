"""A plugin's per-call deadline (``runtime.deadlines``) follows its limits as the host's
policy sets them: the manifest's ``[resources] timeout``, else the host config file's
``[policy.defaults] timeout``, never above its ``[policy.limits] timeout``; at start and
after a reload alike, inline and in a sandboxed worker. A timeout's hint names the line
that set the deadline.

Real hosts reading a real host config file; inline plugins and sandboxed workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay import PluginTimeout
from tests.conftest import PluginFactory

SLOW = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def patient(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds
"""

POLICY = "[policy.defaults]\ntimeout = 0.5\n\n[policy.limits]\ntimeout = 0.8\n"


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "plugbay.toml"
    config.write_text(POLICY)
    return config


def _plugins(plugins: PluginFactory, version: str = "1.0.0") -> dict[str, Path]:
    """Three plugins: one whose manifest sets no timeout (the policy's default), one that
    asks for less than the default, one that asks for more than the policy's cap."""
    return {
        "acme.defaulted": plugins("acme.defaulted", SLOW, version=version, dirname="defaulted"),
        "acme.brisk": plugins(
            "acme.brisk", SLOW, version=version, dirname="brisk",
            extra="[resources]\ntimeout = 0.3\n",
        ),
        "acme.greedy": plugins(
            "acme.greedy", SLOW, version=version, dirname="greedy",
            extra="[resources]\ntimeout = 20\n",
        ),
    }  # fmt: skip


async def _deadlines_hold(host: Any, config: Path, dirs: dict[str, Path]) -> None:
    """Each plugin's 2 s call is cut at its own deadline, the hint naming who set it, and
    each serves on within it."""
    with pytest.raises(PluginTimeout) as defaulted:
        await host.call("acme.defaulted", "patient", seconds=2)
    assert "within 0.5 s" in defaulted.value.message
    assert (
        f"the limit is the host policy's default, [policy.defaults] timeout = 0.5 in {config}"
        in str(defaulted.value.hint)
    )
    [batched] = await host.call_many("acme.defaulted", "patient", [{"seconds": 2}])
    assert isinstance(batched, PluginTimeout) and "within 0.5 s" in batched.message
    assert f"[policy.defaults] timeout = 0.5 in {config}" in str(batched.hint)

    with pytest.raises(PluginTimeout) as brisk:  # the manifest's, under the default
        await host.call("acme.brisk", "patient", seconds=2)
    assert "within 0.3 s" in brisk.value.message
    assert f"raise timeout under [resources] in {dirs['acme.brisk'] / 'plugin.toml'}" in str(
        brisk.value.hint
    )

    with pytest.raises(PluginTimeout) as greedy:  # the policy's cap over the manifest's 20
        await host.call("acme.greedy", "patient", seconds=2)
    assert "within 0.8 s" in greedy.value.message
    assert (
        f"the limit is the host policy's cap, [policy.limits] timeout = 0.8 in {config}, "
        f"under the 20 s of resources.timeout = 20 in {dirs['acme.greedy'] / 'plugin.toml'}"
    ) in str(greedy.value.hint)

    for plugin_id in dirs:  # each serves on, within its deadline
        assert await host.call(plugin_id, "patient", seconds=0.1) == 0.1
    assert host.manager.timeout_of("acme.defaulted") == 0.5


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_the_policys_timeouts_bound_calls_at_start_and_after_a_reload(
    make_host: Callable[..., Any], plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    config = _config(tmp_path)
    dirs = _plugins(plugins)
    host = make_host(
        config_file=config, inline=["*"] if isolation == "inline" else [], init_timeout=30.0
    )
    async with host:
        await _deadlines_hold(host, config, dirs)
        # a new version swapped in gets its deadline the same way (runtime.swap)
        _plugins(plugins, version="1.1.0")
        for plugin_id in dirs:
            await host.reload(plugin_id)
            assert host.plugin(plugin_id).version == "1.1.0"
        await _deadlines_hold(host, config, dirs)


async def test_with_no_timeout_in_the_policy_the_hosts_call_timeout_bounds_calls(
    make_host: Callable[..., Any], plugins: PluginFactory, tmp_path: Path
) -> None:
    """A host config file that sets no timeout leaves the host's call timeout in place,
    capped only by the policy's cap when that is lower."""
    config = tmp_path / "plugbay.toml"
    config.write_text("[policy.limits]\ntimeout = 0.4\n")
    plugins("acme.defaulted", SLOW)
    async with make_host(config_file=config, call_timeout=0.3) as host:
        with pytest.raises(PluginTimeout) as caught:  # the host's 0.3 s, under the cap
            await host.call("acme.defaulted", "patient", seconds=2)
        assert "within 0.3 s" in caught.value.message
        assert "the limit is the host's call timeout, 0.3 s" in str(caught.value.hint)
        assert await host.call("acme.defaulted", "patient", seconds=0.1) == 0.1


@pytest.mark.slow
def test_plugbay_info_and_the_api_show_the_deadline_calls_get(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """``limits.timeout`` is each call's deadline: under only a ``[policy.limits]`` cap
    above the host's call timeout (30 s), a plugin whose manifest sets none is bounded by
    the host's 30 s, not shown the cap; one that asks for more than the cap, by the cap."""
    import json

    import httpx

    from tests._cli import plugbay
    from tests._running import plugbay_run

    (tmp_path / "plugbay.toml").write_text("[policy.limits]\ntimeout = 45\n")
    plugins("acme.defaulted", SLOW, dirname="defaulted")
    plugins("acme.greedy", SLOW, dirname="greedy", extra="[resources]\ntimeout = 60\n")
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)) as running:
        http = httpx.Client(base_url=running.url, headers=running.auth)
        for plugin_id, deadline in [("acme.defaulted", 30), ("acme.greedy", 45)]:
            detail = http.get(f"/api/v1/plugins/{plugin_id}")
            assert detail.status_code == 200, detail.text
            assert detail.json()["limits"]["timeout"] == deadline, plugin_id
            shown = plugbay("info", plugin_id, cwd=tmp_path)
            assert shown.returncode == 0, shown.stderr
            assert f"timeout {deadline} s a call" in " ".join(shown.stdout.split()), shown.stdout
            as_json = json.loads(plugbay("info", plugin_id, "--json", cwd=tmp_path).stdout)
            assert as_json["limits"]["timeout"] == deadline, plugin_id


async def test_with_no_timeout_set_anywhere_info_shows_the_hosts_call_timeout(
    make_host: Callable[..., Any], plugins: PluginFactory, tmp_path: Path
) -> None:
    """No manifest, default nor cap sets a timeout: the host's call timeout bounds calls,
    and ``info`` says so rather than nothing."""
    config = tmp_path / "plugbay.toml"
    config.write_text("[policy.defaults]\nmemory = '256MiB'\n")
    plugins("acme.defaulted", SLOW)
    async with make_host(config_file=config, call_timeout=0.3) as host:
        assert host.info("acme.defaulted")["limits"]["timeout"] == 0.3
        with pytest.raises(PluginTimeout) as caught:
            await host.call("acme.defaulted", "patient", seconds=2)
        assert "within 0.3 s" in caught.value.message


async def test_a_timeout_of_0_in_the_policy_sets_none_and_the_hint_says_what_did(
    make_host: Callable[..., Any], plugins: PluginFactory, tmp_path: Path
) -> None:
    """``timeout = 0`` under ``[policy.defaults]`` or ``[policy.limits]`` sets no deadline
    (a call given no time could never answer): the host's call timeout bounds calls, and
    the hint and ``info`` name that, not a 0 s default or cap."""
    config = tmp_path / "plugbay.toml"
    config.write_text("[policy.defaults]\ntimeout = 0\n\n[policy.limits]\ntimeout = 0\n")
    plugins("acme.defaulted", SLOW)
    async with make_host(config_file=config, call_timeout=0.3) as host:
        assert host.info("acme.defaulted")["limits"]["timeout"] == 0.3
        with pytest.raises(PluginTimeout) as caught:
            await host.call("acme.defaulted", "patient", seconds=2)
        assert "within 0.3 s" in caught.value.message
        assert "the limit is the host's call timeout, 0.3 s" in str(caught.value.hint)
        assert "[policy." not in str(caught.value.hint)
        assert await host.call("acme.defaulted", "patient", seconds=0.1) == 0.1


@pytest.mark.parametrize(
    ("policy", "manifest", "said"),
    [
        # a cap under the policy's default, the manifest setting none
        (
            "[policy.defaults]\ntimeout = 20\n[policy.limits]\ntimeout = 0.3\n",
            "",
            "the limit is the host policy's cap, [policy.limits] timeout = 0.3 in {config}, "
            "under the 20 s of [policy.defaults] timeout = 20 in {config}",
        ),
        # a cap under the host's call timeout (Host(call_timeout=20))
        (
            "[policy.limits]\ntimeout = 0.3\n",
            "",
            "the limit is the host policy's cap, [policy.limits] timeout = 0.3 in {config}, "
            "under the 20 s of the host's call timeout of 20 s",
        ),
        # the host's bound on any call, under the manifest's 20 and above the policy's cap
        (
            "[policy.limits]\ntimeout = 10\n",
            "[resources]\ntimeout = 20\n",
            "resources.timeout = 20 in {location} asks for more than the host allows a "
            "call, 0.4 s: split the work into shorter calls",
        ),
    ],
)
async def test_the_hint_names_what_set_the_deadline_whichever_bound_fired(
    make_host: Callable[..., Any],
    plugins: PluginFactory,
    tmp_path: Path,
    policy: str,
    manifest: str,
    said: str,
) -> None:
    import dataclasses

    config = tmp_path / "plugbay.toml"
    config.write_text(policy)
    location = plugins("acme.slow", SLOW, extra=manifest) / "plugin.toml"
    host = make_host(config_file=config, call_timeout=20)
    # the host's max_call_timeout (300 s) is no Host argument: lowered here to meet it
    host.manager.settings = dataclasses.replace(host.manager.settings, max_call_timeout=0.4)
    async with host:
        deadline = host.manager.timeout_of("acme.slow")
        with pytest.raises(PluginTimeout) as caught:
            await host.call("acme.slow", "patient", seconds=5)
        assert f"within {deadline:g} s" in caught.value.message
        assert said.format(config=config, location=location) in str(caught.value.hint)
        assert await host.call("acme.slow", "patient", seconds=0.1) == 0.1
