"""How the flight recorder hears a call (plugbay.runtime.tap, .recorder): from the call
path itself, for every way a call arrives (one call, a batch, a failure, a time limit),
on inline and sandboxed plugins; what it keeps of a secret parameter's empty default;
and a recorder going on from its file as it was written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay import PlugbayError, UtilityPlugin, command
from plugbay.api import CommandSpec
from plugbay.runtime.host import Host
from plugbay.runtime.recorder import REDACTED, Recorder, read_recording
from plugbay.runtime.replay import replay
from plugbay.runtime.tap import heard_by
from tests._trials import calc
from tests.conftest import PluginFactory

SLOW = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def wait(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds
"""


def _calls(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()[1:] if line.strip()]


@pytest.mark.parametrize("sandboxed", [False, True], ids=["inline", "sandboxed"])
async def test_every_call_is_heard_once_with_its_outcome_version_and_time(
    plugins: PluginFactory, make_host: Callable[..., Host], sandboxed: bool
) -> None:
    calc(plugins.root / "calc", "1.1.0", wrong=True)  # raises on a % 7 == 3
    plugins("acme.slow", SLOW)
    async with make_host(inline=[] if sandboxed else ["*"], call_timeout=0.5) as host:
        assert host.plugin("acme.calc").isolation == ("process" if sandboxed else "inline")
        host.trials.record("acme.calc")
        host.trials.record("acme.slow")
        assert await host.call("acme.calc", "add", a=1, b=2) == 3
        with pytest.raises(PlugbayError, match="cannot add 3"):
            await host.call("acme.calc", "add", a=3, b=0)
        # a batch: each of its calls heard on its own, answers and errors alike
        answers = await host.call_many("acme.calc", "add", [{"a": 4, "b": 0}, {"a": 10, "b": 0}])
        assert answers[0] == 4 and isinstance(answers[1], PlugbayError)
        with pytest.raises(PlugbayError, match="did not finish"):
            await host.call("acme.slow", "wait", seconds=5.0)
        assert await host.call("acme.slow", "wait", seconds=0.0) == 0.0
        calls = _calls(host.trials.recording("acme.calc"))
        slow = _calls(host.trials.recording("acme.slow"))
        assert await host.call("acme.calc", "add", a=2, b=2) == 4  # the plugin keeps serving
    assert [c["params"]["a"] for c in calls] == [1, 3, 4, 10]
    assert [c["result"] for c in calls] == [3, None, 4, None]
    errors = [c["error"] for c in calls]
    assert errors[0] is None and errors[2] is None
    assert errors[1]["type"] == "ValueError" and "cannot add 3" in errors[1]["message"]
    assert errors[3]["type"] == "ValueError"
    assert all(c["version"] == "1.1.0" and 0 < c["seconds"] < 30 for c in calls)
    timed_out, quick = slow
    assert timed_out["error"]["type"] == "PluginTimeout"
    assert 0.4 < timed_out["seconds"] < 30 and quick["result"] == 0.0


async def test_an_empty_default_of_a_secret_parameter_is_kept_and_replayed_a_given_secret_is_not(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")  # add(a, b, token: str = ""): token is secret
    async with make_host() as host:  # inline: the checked parameters hold every default
        assert host.plugin("acme.calc").isolation == "inline"
        host.trials.record("acme.calc")
        for a in range(5):
            await host.call("acme.calc", "add", a=a, b=1)
        await host.call("acme.calc", "add", a=9, b=1, token="hunter2-secret")
        await host.call("acme.calc", "add", a=10, b=1, token="")  # given, but empty
        data = host.trials.recording("acme.calc")
    assert b"hunter2-secret" not in data
    calls = _calls(data)
    assert [c["params"] for c in calls[:5]] == [{"a": a, "b": 1, "token": ""} for a in range(5)]
    assert all("redacted" not in c for c in calls[:5])
    assert calls[5]["params"] == {"a": 9, "b": 1, "token": REDACTED}
    assert calls[5]["redacted"] == ["token"]
    assert calls[6]["params"] == {"a": 10, "b": 1, "token": ""} and "redacted" not in calls[6]
    # every call but the one with its secret can be replayed, and gives the same answers
    path = tmp_path / "calc.jsonl"
    path.write_bytes(data)
    report = await replay(
        read_recording(path), "1.0.0", plugin_dirs=[plugins.root], state_dir=tmp_path / "replay"
    )
    assert (report.replayed, report.skipped, report.failed) == (6, 1, False)


class _Keyed(UtilityPlugin):
    @command
    def fetch(self, url: str, key: str = "built-in-key", token: str | None = None) -> str:
        return url


def test_a_default_that_may_hold_a_secret_is_redacted_even_when_not_given(
    tmp_path: Path,
) -> None:
    spec = CommandSpec(_Keyed, _Keyed.__dict__["fetch"])
    recorder = Recorder("acme.keyed", tmp_path / "keyed.jsonl", secret=["fetch.key", "token"])
    defaults = {"url": "u", "key": "built-in-key", "token": None}  # as an inline call has them
    recorder.called("1.0.0", spec, defaults, "u", None, 0.001)
    recorder.called("1.0.0", spec, {**defaults, "token": "t0ps3cret"}, "u", None, 0.001)
    recorder.called("1.0.0", spec, {"url": "u"}, "u", None, 0.001)  # as a worker's call has them
    data = recorder.to_bytes()
    assert b"built-in-key" not in data and b"t0ps3cret" not in data
    first, second, third = _calls(data)
    assert first["params"] == {"url": "u", "key": REDACTED, "token": None}
    assert first["redacted"] == ["key"]
    assert second["params"] == {"url": "u", "key": REDACTED, "token": REDACTED}
    assert second["redacted"] == ["key", "token"]
    assert third["params"] == {"url": "u"} and "redacted" not in third


def test_a_recorder_goes_on_from_its_file_with_the_lines_as_they_were_written(
    tmp_path: Path,
) -> None:
    spec = CommandSpec(_Keyed, _Keyed.__dict__["fetch"])
    path = tmp_path / "keyed.jsonl"
    first = Recorder("acme.keyed", path, calls=3)
    for url in ["one", "bad \ud800 surrogate", "three"]:
        first.called("1.0.0", spec, {"url": url}, url, None, 0.001)
    first.save()
    written = path.read_bytes().splitlines()[1:]
    assert b'"note":' in written[1]  # a line the recorder had to mend is kept as it was
    again = Recorder("acme.keyed", path, calls=3)
    assert again.to_bytes().splitlines()[1:] == written
    again.called("1.0.0", spec, {"url": "four"}, "four", None, 0.002)
    lines = again.to_bytes().splitlines()[1:]
    assert lines[:2] == written[1:] and json.loads(lines[2])["result"] == "four"
    assert again.status()["dropped"] == 1
    # a file that is not a recording is not gone on from (and says why when read)
    path.write_bytes(path.read_bytes() + b'{"at": "soon"}\n')
    assert len(Recorder("acme.keyed", path)) == 0
    with pytest.raises(PlugbayError, match="line 5"):
        read_recording(path)


def test_a_lowered_bound_holds_at_once_and_dropped_and_dirty_follow_the_calls(
    tmp_path: Path,
) -> None:
    spec = CommandSpec(_Keyed, _Keyed.__dict__["fetch"])
    path = tmp_path / "keyed.jsonl"
    recorder = Recorder("acme.keyed", path, calls=10)
    assert not recorder.dirty and recorder.dropped == 0
    for n in range(8):
        recorder.called("1.0.0", spec, {"url": f"u{n}"}, f"u{n}", None, 0.001)
    assert recorder.dirty and (len(recorder), recorder.dropped) == (8, 0)
    recorder.calls = 3  # lowered while recording: held now, the newest kept
    assert (len(recorder), recorder.dropped, recorder.status()["limit_calls"]) == (3, 5, 3)
    assert [c["params"]["url"] for c in _calls(recorder.to_bytes())] == ["u5", "u6", "u7"]
    recorder.max_bytes = 1  # never fewer than one call
    assert (len(recorder), recorder.dropped) == (1, 7)
    assert recorder.status()["bytes"] == len(recorder.to_bytes().splitlines()[1])
    recorder.save()
    assert not recorder.dirty
    # a recorder going on from the file counts what its bounds drop of it too
    again = Recorder("acme.keyed", path, calls=1)
    again.called("1.0.0", spec, {"url": "next"}, "next", None, 0.001)
    assert (len(again), again.dropped, again.seen) == (1, 1, 1) and again.dirty


def test_two_listeners_each_hear_every_call_with_the_version_that_answered() -> None:
    spec = CommandSpec(_Keyed, _Keyed.__dict__["fetch"])
    heard: list[tuple[str, str, object]] = []

    class Listener:
        def __init__(self, name: str) -> None:
            self.name = name

        def called(
            self,
            version: str,
            spec: CommandSpec,
            params: dict[str, Any],
            result: Any,
            error: BaseException | None,
            seconds: float,
        ) -> None:
            heard.append((self.name, version, result if error is None else repr(error)))

    assert heard_by([], "1.0.0") is None  # nobody listens: the route has no 'heard'
    tell = heard_by([Listener("recorder"), Listener("shadow")], "2.0.0")
    assert tell is not None
    tell(spec, {"url": "u"}, "u", None, 0.001)
    tell(spec, {"url": "v"}, None, ValueError("no"), 0.002)
    assert heard == [
        ("recorder", "2.0.0", "u"),
        ("shadow", "2.0.0", "u"),
        ("recorder", "2.0.0", "ValueError('no')"),
        ("shadow", "2.0.0", "ValueError('no')"),
    ]
