"""An operator's mistakes on upgrade: a version that needs a plugin the host is not
running is refused, and the serving version keeps answering its callers; a canary the
host's stop ended is still told after the restart."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay import PlugbayError
from plugbay.runtime.canary import CanarySettings
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def which(self) -> str:
        return "{pid} {version}"
"""


def _plugin(directory: Path, pid: str, version: str, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.toml").write_text(
        f'id = "{pid}"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n'
        + textwrap.dedent(extra)
    )
    (directory / "main.py").write_text(textwrap.dedent(CODE.format(pid=pid, version=version)))
    return directory


NEEDS_BASE_2 = '[dependencies]\n"acme.base" = "^2"\n'


async def test_an_upgrade_to_a_version_whose_dependency_is_not_running_is_refused(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    _plugin(plugins.root / "greeter", "acme.greeter", "1.0.0")
    async with make_host() as host:
        host.install(_plugin(tmp_path / "v11", "acme.greeter", "1.1.0", NEEDS_BASE_2))
        answers: list[str] = []
        stop, answered = asyncio.Event(), asyncio.Event()

        async def caller() -> None:
            while not stop.is_set():
                answers.append(await host.call("acme.greeter", "which"))
                answered.set()
                await asyncio.sleep(0)

        calling = asyncio.create_task(caller())
        async with asyncio.timeout(10):  # the callers are answered before the upgrade
            await answered.wait()
        with pytest.raises(PlugbayError) as refused:
            await host.upgrade("acme.greeter", "1.1.0")
        stop.set()
        await calling  # a failed call would raise here
        text = str(refused.value)
        assert "1.1.0 requires 'acme.base' ^2, which is not loaded" in text
        assert "'plugbay load acme.base'" in text
        assert "1.0.0 keeps serving" in text
        assert host.plugin("acme.greeter").version == "1.0.0"
        assert await host.call("acme.greeter", "which") == "acme.greeter 1.0.0"
        assert set(answers) == {"acme.greeter 1.0.0"}
        # once the dependency runs, the same upgrade goes through
        _plugin(plugins.root / "base", "acme.base", "2.0.0")
        await host.load("acme.base")
        await host.upgrade("acme.greeter", "1.1.0")
        assert await host.call("acme.greeter", "which") == "acme.greeter 1.1.0"


async def test_how_a_canary_ended_is_told_after_the_host_stopped_in_its_middle(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    _plugin(plugins.root / "greeter", "acme.greeter", "1.0.0")
    async with make_host() as host:
        host.install(_plugin(tmp_path / "v11", "acme.greeter", "1.1.0"))
        settings = CanarySettings(share=0.5, window_calls=10**6, min_calls=5)
        await host.trials.canary("acme.greeter", settings=settings)
        for _ in range(20):
            await host.call("acme.greeter", "which")
    async with make_host() as host:  # the same state directory
        assert host.plugin("acme.greeter").version == "1.0.0"
        ended = host.trials.canary_status("acme.greeter")
        assert ended["state"] == "rolled-back"
        assert ended["reason"] == "the host is stopping"
        assert (ended["from"], ended["to"]) == ("1.0.0", "1.1.0")
        assert ended["figures"]["new"]["calls"] > 0  # the calls it answered, kept
        assert ended["settings"]["window_calls"] == 10**6


async def test_an_upgrade_naming_no_version_skips_one_whose_dependency_is_not_running(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    _plugin(plugins.root / "greeter", "acme.greeter", "1.0.0")
    async with make_host() as host:
        host.install(_plugin(tmp_path / "v11", "acme.greeter", "1.1.0"))
        host.install(_plugin(tmp_path / "v12", "acme.greeter", "1.2.0", NEEDS_BASE_2))
        answers: list[str] = []
        stop, answered = asyncio.Event(), asyncio.Event()

        async def caller() -> None:
            while not stop.is_set():
                answers.append(await host.call("acme.greeter", "which"))
                answered.set()
                await asyncio.sleep(0)

        calling = asyncio.create_task(caller())
        async with asyncio.timeout(10):
            await answered.wait()
        planned = host.manager.upgrade_plan("acme.greeter")  # what --dry-run shows
        assert planned.to_dict() == {"acme.greeter": {"from": "1.0.0", "to": "1.1.0"}}
        plan = await host.upgrade("acme.greeter")
        stop.set()
        await calling  # a failed call would raise here
        assert plan.to_dict() == {"acme.greeter": {"from": "1.0.0", "to": "1.1.0"}}
        assert plan.passed_over is not None and plan.passed_over["version"] == "1.2.0"
        assert plan.passed_over["requires"] == {
            "1.2.0": {"acme.base": "'acme.base' ^2, which is not loaded"}
        }
        hint = plan.passed_over["hint"]
        assert "1.2.0 requires 'acme.base' ^2, which is not loaded" in hint
        assert "'plugbay load acme.base'" in hint
        assert await host.call("acme.greeter", "which") == "acme.greeter 1.1.0"
        assert set(answers) <= {"acme.greeter 1.0.0", "acme.greeter 1.1.0"}
        # once the dependency runs, the next upgrade reaches the newest
        _plugin(plugins.root / "base", "acme.base", "2.0.0")
        await host.load("acme.base")
        assert (await host.upgrade("acme.greeter")).passed_over is None
        assert await host.call("acme.greeter", "which") == "acme.greeter 1.2.0"


async def test_a_canary_that_recorded_no_end_is_not_told_as_an_older_ones_ending(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    """A canary ended (rolled back), then a second one whose host died before it wrote its
    end (SIGKILL; here its end record is kept from the history): after a restart,
    'plugbay canary ID' says the last one recorded no end, not the first one's ending."""
    _plugin(plugins.root / "greeter", "acme.greeter", "1.0.0")
    settings = CanarySettings(share=0.5, window_calls=10**6, min_calls=5)
    async with make_host() as host:
        host.install(_plugin(tmp_path / "v11", "acme.greeter", "1.1.0"))
        await host.trials.canary("acme.greeter", settings=settings)
        await host.trials.stop_canary("acme.greeter")
        host.install(_plugin(tmp_path / "v12", "acme.greeter", "1.2.0"))
        await host.trials.canary("acme.greeter", "1.2.0", settings=settings)
        killed = host.trials.canaries["acme.greeter"]
        killed._write = lambda result, figures: None  # type: ignore[method-assign]
    async with make_host() as host:  # the same state directory
        assert host.plugin("acme.greeter").version == "1.0.0"
        with pytest.raises(PlugbayError) as caught:
            host.trials.canary_status("acme.greeter")
    message = caught.value.message
    assert "has no canary running: the last one (of 1.2.0, beside 1.0.0) recorded no end" in (
        message
    )
    assert "'plugbay upgrade acme.greeter --canary 10%' starts a new one" in str(caught.value.hint)
