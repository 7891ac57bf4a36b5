"""The flight recorder (plugbay.runtime.recorder, .tap): real hosts, sandboxed workers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay import ConfigError, PlugbayError, PluginNotFound, PluginStateError
from plugbay.runtime.host import Host
from plugbay.runtime.recorder import REDACTED, read_recording
from plugbay.runtime.tap import TurnHandle
from tests._trials import calc
from tests.conftest import PluginFactory


def _lines(data: bytes) -> tuple[dict[str, object], list[dict[str, object]]]:
    rows = [json.loads(line) for line in data.splitlines() if line.strip()]
    return rows[0], rows[1:]


async def test_a_sandboxed_plugins_calls_are_recorded_with_secrets_redacted(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.1.0", wrong=True)
    async with make_host(inline=[]) as host:
        assert host.plugin("acme.calc").isolation == "process"
        status = host.trials.record("acme.calc")
        assert status["recording"] and status["calls"] == 0
        assert await host.call("acme.calc", "add", a=1, b=2, token="hunter2-secret") == 3
        with pytest.raises(PlugbayError, match="cannot add 3"):
            await host.call("acme.calc", "add", a=3, b=1)
        data = host.trials.recording("acme.calc")
    # the secret never reaches the recording, in memory or on disk
    assert b"hunter2-secret" not in data
    path = tmp_path / "state" / "recordings" / "acme.calc.jsonl"
    assert b"hunter2-secret" not in path.read_bytes()
    header, calls = _lines(path.read_bytes())
    assert header["plugin"] == "acme.calc" and header["secret_parameters"] == ["token"]
    ok, failed = calls
    assert ok["command"] == "add" and ok["version"] == "1.1.0"
    assert ok["params"] == {"a": 1, "b": 2, "token": REDACTED} and ok["redacted"] == ["token"]
    assert ok["result"] == 3 and ok["error"] is None and 0 < ok["seconds"] < 30
    assert failed["params"] == {"a": 3, "b": 1}
    assert failed["error"]["type"] == "ValueError" and "cannot add 3" in failed["error"]["message"]
    # the file reads back as the same recording
    recording = read_recording(path)
    assert [c.params.get("a") for c in recording.calls] == [1, 3]


async def test_a_recording_is_bounded_and_says_how_many_calls_it_dropped(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host() as host:
        host.trials.record("acme.calc", calls=5)
        for a in range(12):
            await host.call("acme.calc", "add", a=a, b=0)
        _, calls = _lines(host.trials.recording("acme.calc"))
        status = host.trials.recording_status("acme.calc")[0]
    assert [c["params"]["a"] for c in calls] == [7, 8, 9, 10, 11]  # the newest five
    assert status["dropped"] == 7 and status["seen"] == 12


async def test_only_a_recorded_plugins_route_tells_the_recorder_and_stopping_ends_it(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    plugins("acme.other")
    async with make_host() as host:
        manager = host.manager
        route = manager.route_of("acme.calc")
        assert route is not None and route.heard is None
        host.trials.record("acme.calc")
        tapped = manager.route_of("acme.calc")
        assert tapped is not None and tapped.heard is not None
        # the same version's handle, nothing wrapped around its calls
        assert tapped.handle is route.handle and not isinstance(tapped.handle, TurnHandle)
        assert tapped.inflight is route.inflight  # a swap drains the same counter
        other = manager.route_of("acme.other")
        assert other is not None and other.heard is None
        await host.call("acme.calc", "add", a=5, b=1)
        stopped = host.trials.stop_recording("acme.calc")
        assert not stopped["recording"] and stopped["calls"] == 1
        plain = manager.route_of("acme.calc")
        assert plain is not None and plain.heard is None and plain.handle is route.handle
        await host.call("acme.calc", "add", a=1, b=1)  # not recorded any more
        _, calls = _lines(host.trials.recording("acme.calc"))  # the file is still there
        assert [c["params"]["a"] for c in calls] == [5]


async def test_the_policy_opts_a_plugin_in_and_the_recording_follows_a_reload(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    directory = calc(plugins.root / "calc", "1.0.0")
    config = tmp_path / "plugbay.toml"
    config.write_text('[policy]\nrecord = ["acme.*"]\nrecord-calls = 50\ninline = ["*"]\n')
    async with make_host(config_file=config) as host:
        assert host.trials.recording_status("acme.calc")[0]["source"] == "policy"
        await host.call("acme.calc", "add", a=1, b=1)
        calc(directory, "1.2.0")
        await host.reload("acme.calc")
        await host.call("acme.calc", "add", a=2, b=2)
    # written at the stop, both versions in it
    _, calls = _lines((tmp_path / "state" / "recordings" / "acme.calc.jsonl").read_bytes())
    assert [(c["version"], c["result"]) for c in calls] == [("1.0.0", 2), ("1.2.0", 4)]
    # the next start goes on from the file
    async with make_host(config_file=config) as host:
        await host.call("acme.calc", "add", a=3, b=3)
        _, calls = _lines(host.trials.recording("acme.calc"))
    assert [c["result"] for c in calls] == [2, 4, 6]


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('record = "acme.*"', r"\[policy\] record must be a list of plugin id patterns"),
        ("record-calls = 0", r"\[policy\] record-calls must be a whole number of calls"),
    ],
)
async def test_a_wrong_recording_opt_in_is_refused_at_the_start(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path, line: str, said: str
) -> None:
    # it was logged at the first route and the plugin went unrecorded, so an operator
    # who misspelt it found no recording when the upgrade's replay needed one
    calc(plugins.root / "calc", "1.0.0")
    config = tmp_path / "plugbay.toml"
    config.write_text(f'[policy]\n{line}\ninline = ["*"]\n')
    with pytest.raises(ConfigError, match=said) as caught:
        async with make_host(config_file=config):
            pass
    assert caught.value.where == str(config) and caught.value.hint


async def test_bad_requests_get_clear_errors_and_the_plugin_keeps_serving(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host() as host:
        with pytest.raises(PluginNotFound, match=r"acme\.calx"):
            host.trials.record("acme.calx")
        with pytest.raises(PluginStateError, match="no recording"):
            host.trials.stop_recording("acme.calc")
        with pytest.raises(PlugbayError, match="at least one call"):
            host.trials.record("acme.calc", calls=0)
        assert await host.call("acme.calc", "add", a=1, b=1) == 2
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"format": "plugbay-recording/1", "plugin": "acme.calc"}\n{"at": 1}\n')
    with pytest.raises(PlugbayError, match="line 2") as caught:
        read_recording(broken)
    assert caught.value.where == f"{broken}:2"
    (tmp_path / "other.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(PlugbayError, match="not a plugbay recording"):
        read_recording(tmp_path / "other.jsonl")
