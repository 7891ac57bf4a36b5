"""Replay (plugbay.runtime.replay): a recording run against an installed version in a
sandbox of its own, compared per command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay import PlugbayError
from plugbay.runtime.host import Host
from plugbay.runtime.recorder import read_recording
from plugbay.runtime.replay import replay
from tests._trials import calc, expected_wrong
from tests.conftest import PluginFactory

INPUTS = list(range(24))


async def _record(make_host: Callable[..., Host], tmp_path: Path) -> Path:
    """Live 1.0.0 (sandboxed) with two notes kept, then a recording of adds and a read."""
    async with make_host(inline=[]) as host:
        await host.call("acme.calc", "remember", text="one")
        await host.call("acme.calc", "remember", text="two")
        host.trials.record("acme.calc")
        for a in INPUTS:
            await host.call("acme.calc", "add", a=a, b=1)
        assert await host.call("acme.calc", "recalled") == 2
        await host.call("acme.calc", "add", a=1, b=1, token="s3cr3t")  # redacted: not replayed
        host.install(calc(tmp_path / "src" / "wrong", "1.1.0", wrong=True))
        host.install(calc(tmp_path / "src" / "right", "1.2.0"))
        data = host.trials.recording("acme.calc")
    recording = tmp_path / "calc.jsonl"
    lines = data.splitlines()
    # a write the recording carries: replayed in the copy, never in the live directory
    write = {"at": 0, "command": "remember", "params": {"text": "three"}, "result": 3,
             "error": None, "seconds": 0.001, "version": "1.0.0"}  # fmt: skip
    recording.write_bytes(b"\n".join([*lines, json.dumps(write).encode()]) + b"\n")
    return recording


async def test_replay_finds_the_inputs_a_new_version_gets_wrong_and_leaves_live_data_alone(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    path = await _record(make_host, tmp_path)
    live = tmp_path / "state" / "data" / "acme.calc"
    before = {p.name: p.read_bytes() for p in live.iterdir() if p.is_file()}
    recording = read_recording(path)
    state = tmp_path / "state"

    wrong = await replay(recording, "1.1.0", plugin_dirs=[plugins.root], state_dir=state)
    add = wrong.comparison.commands["add"]
    raises = [a for a in INPUTS if expected_wrong(a, 1) is None]
    off = [a for a in INPUTS if a not in raises and expected_wrong(a, 1) != a + 1]
    assert add.new_errors == len(raises) and add.differ == len(off)
    assert add.same == len(INPUTS) - len(raises) - len(off)
    assert add.skipped == 1  # the call with a redacted parameter
    shown = {e["params"]["a"]: e for e in add.examples}
    assert shown[3]["verdict"] == "new-error" and shown[3]["got"]["type"] == "ValueError"
    assert shown[5] == {"verdict": "differ", "params": {"a": 5, "b": 1}, "expected": 6, "got": 7}
    assert wrong.failed and wrong.comparison.differences == len(raises) + len(off)
    # the sandbox had a copy of the data: the read saw the live notes, the write went there
    assert wrong.comparison.commands["recalled"].same == 1
    assert wrong.comparison.commands["remember"].same == 1
    assert wrong.calls_per_second is not None and wrong.calls_per_second > 0
    assert wrong.to_dict()["recorded_versions"] == ["1.0.0"]

    right = await replay(recording, "1.2.0", plugin_dirs=[plugins.root], state_dir=state)
    assert not right.failed and right.comparison.commands["add"].same == len(INPUTS)

    # the live data directory is as it was, and a host on it still counts two notes
    assert {p.name: p.read_bytes() for p in live.iterdir() if p.is_file()} == before
    async with make_host(inline=[]) as host:
        assert await host.call("acme.calc", "recalled") == 2


async def test_replay_of_a_version_not_installed_says_which_are(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    path = await _record(make_host, tmp_path)
    with pytest.raises(PlugbayError, match=r"9.9.9 is not installed \(known: 1.0.0, 1.1.0, 1.2.0"):
        await replay(
            read_recording(path), "9.9.9", plugin_dirs=[plugins.root], state_dir=tmp_path / "state"
        )
