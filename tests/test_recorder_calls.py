"""The flight recorder's calls (plugbay.runtime.recorder): what the caller sent and got,
in order, within the bounds, secrets redacted, whatever the caller does afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from plugbay import UtilityPlugin, command
from plugbay.api import CommandSpec
from plugbay.runtime.host import Host
from plugbay.runtime.recorder import MAX_ENTRY, REDACTED, Recorder, read_recording
from tests._trials import calc
from tests.conftest import PluginFactory

#: enough calls to go past any buffering of the recorder's
BATCH = 32

BASKET = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def tally(self, items: list[int], label: str) -> dict[str, int | str | list[int]]:
        return {"label": label, "total": sum(items), "items": list(items)}
"""


def _calls(data: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in data.splitlines()[1:] if line.strip()]


async def test_a_caller_changing_what_it_sent_or_got_after_the_call_leaves_the_recording(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.basket", BASKET)
    async with make_host(inline=[]) as host:
        assert host.plugin("acme.basket").isolation == "process"
        host.trials.record("acme.basket")
        items = [1, 2]
        params: dict[str, object] = {"items": items, "label": "first"}
        answer = await host.manager.call("acme.basket", "tally", params)
        # the caller reuses its list, its dict and the answer it was given
        items.append(100)
        params["label"] = "changed"
        answer["total"] = -1
        answer["items"].append(7)
        await host.call("acme.basket", "tally", items=[5], label="second")
        calls = _calls(host.trials.recording("acme.basket"))
    assert [c["params"] for c in calls] == [
        {"items": [1, 2], "label": "first"},
        {"items": [5], "label": "second"},
    ]
    assert calls[0]["result"] == {"label": "first", "total": 3, "items": [1, 2]}


async def test_a_secret_is_never_kept_in_clear_and_plain_and_secret_calls_keep_their_order(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host(inline=[]) as host:
        host.trials.record("acme.calc")
        recorder = host.trials.recorders["acme.calc"]
        for a in range(3 * BATCH + 5):  # every third call carries the secret
            secret = {"token": f"hunter{a}-secret"} if a % 3 == 0 else {}
            assert await host.call("acme.calc", "add", a=a, b=1, **secret) == a + 1
            # what the recorder holds in memory never has the secret either
            assert all(b"-secret" not in line for line in recorder._entries)
        exported = host.trials.recording("acme.calc")
    saved = (tmp_path / "state" / "recordings" / "acme.calc.jsonl").read_bytes()
    for data in (exported, saved):
        assert b"-secret" not in data
        calls = _calls(data)
        assert [c["params"]["a"] for c in calls] == list(range(3 * BATCH + 5))
        assert all(c["params"].get("token") == (REDACTED if c["params"]["a"] % 3 == 0 else None)
                   for c in calls)  # fmt: skip
        assert [c.get("redacted") for c in calls[:3]] == [["token"], None, None]


async def test_the_bounds_hold_even_when_lowered_and_seen_counts_every_call(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    calc(plugins.root / "calc", "1.0.0")
    async with make_host(inline=[]) as host:  # sandboxed: a call without its secret
        host.trials.record("acme.calc", calls=5)
        for a in range(BATCH + 3):
            await host.call("acme.calc", "add", a=a, b=0)
        status = host.trials.recording_status("acme.calc")[0]
        assert status["calls"] == 5 and status["seen"] == BATCH + 3
        assert status["dropped"] == BATCH - 2
        calls = _calls(host.trials.recording("acme.calc"))
        assert [c["params"]["a"] for c in calls] == list(range(BATCH - 2, BATCH + 3))
        # a bound lowered while recording holds from the next call on
        host.trials.record("acme.calc", calls=2)
        await host.call("acme.calc", "add", a=BATCH + 3, b=0)
        calls = _calls(host.trials.recording("acme.calc"))
        assert [c["params"]["a"] for c in calls] == [BATCH + 2, BATCH + 3]
        # a byte bound: the newest calls that fit, never fewer than one
        host.trials.record("acme.calc", calls=1000, max_bytes=1000)
        for a in range(2 * BATCH):
            await host.call("acme.calc", "add", a=1000 + a, b=0)
        data = host.trials.recording("acme.calc")
        status = host.trials.recording_status("acme.calc")[0]
    lines = data.splitlines()[1:]
    assert 1 <= len(lines) < 15 and sum(len(line) for line in lines) <= 1000
    assert status["bytes"] <= 1000 and status["calls"] == len(lines)
    assert _calls(data)[-1]["params"]["a"] == 1000 + 2 * BATCH - 1


class _Echo(UtilityPlugin):
    @command
    def echo(self, text: str) -> str:
        return text


def test_a_value_json_cannot_hold_or_an_answer_too_large_spoils_only_its_own_line(
    tmp_path: Path,
) -> None:
    spec = CommandSpec(_Echo, _Echo.__dict__["echo"])
    recorder = Recorder("acme.echo", tmp_path / "echo.jsonl")
    texts = ["one", "bad \ud800 surrogate", "x" * (MAX_ENTRY + 10), "four"]
    for text in texts:
        recorder.called("1.0.0", spec, {"text": text}, text, None, 0.001)
    assert recorder.dirty and recorder.seen == 4 and len(recorder) == 4
    path = recorder.save()
    assert path is not None and not recorder.dirty
    calls = read_recording(path).calls
    assert [c.result for c in calls] == ["one", None, None, "four"]
    assert [c.truncated for c in calls] == [False, True, True, False]
    assert calls[1].params == {"text": repr(texts[1])}
    assert calls[2].params == {"text": texts[2]}  # the parameters stay, the answer goes
    assert all(len(line) <= 2 * MAX_ENTRY for line in path.read_bytes().splitlines())
