"""``GET /api/v1/events``: the host's system events over HTTP, on a real uvicorn over a
real host: what a reader gets, what it may filter, that a slow reader loses only its
own events, and that nothing is left subscribed when it goes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from plugbay.web import _system_events
from tests._served import api_served
from tests.conftest import PluginFactory

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b
"""


async def _read(response: httpx.Response, events: list[tuple[str, Any]]) -> None:
    """Append ``(event, data)`` of each server-sent event until the stream ends."""
    name = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))


async def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _readers(host: Any) -> list[str]:
    return [s.plugin_id for s in host.events._subscribers if s.plugin_id.startswith("http-")]


@pytest.fixture
async def served(
    make_host: Callable[..., Any], plugins: PluginFactory
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    plugins("acme.calc", CALC)
    plugins("acme.other", CALC)
    host = make_host()
    async with host, api_served(host) as (url, token):
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
            yield host, http


async def test_a_reader_gets_the_events_it_asked_for_as_they_happen(
    served: tuple[Any, httpx.AsyncClient],
) -> None:
    host, http = served
    everything: list[tuple[str, Any]] = []
    plugins_only: list[tuple[str, Any]] = []
    params: dict[str, Any] = {"kind": ["plugin.*"], "max_events": 1}
    async with (
        http.stream("GET", "/api/v1/events", params={"max_events": 2}) as all_kinds,
        http.stream("GET", "/api/v1/events", params=params) as only,
    ):
        assert all_kinds.status_code == 200 and only.status_code == 200
        assert all_kinds.headers["content-type"].startswith("text/event-stream")
        readers = [
            asyncio.create_task(_read(all_kinds, everything)),
            asyncio.create_task(_read(only, plugins_only)),
        ]
        await _until(lambda: len(_readers(host)) == 2, "both readers to subscribe")
        host.events.emit("host.note", detail="not a plugin's")
        disabled = await http.post("/api/v1/plugins/acme.calc/disable", json={"reason": "x"})
        assert disabled.status_code == 200, disabled.text
        async with asyncio.timeout(20):
            await asyncio.gather(*readers)
    assert everything[0][0] == "open" and everything[0][1]["kinds"] == []
    assert plugins_only[0] == ("open", {"t": plugins_only[0][1]["t"], "kinds": ["plugin.*"]})
    kinds = [(e, d["kind"]) for e, d in everything[1:]]
    assert kinds[0] == ("system", "host.note") and everything[1][1]["data"] == {
        "detail": "not a plugin's"
    }
    assert all(e == "system" and d["kind"].startswith("plugin.") for e, d in plugins_only[1:])
    assert kinds[1] == ("system", "plugin.unloaded")
    assert [(e, d.get("kind")) for e, d in plugins_only] == [
        ("open", None),
        ("system", "plugin.unloaded"),  # not host.note
    ]
    assert any(d["data"].get("plugin") == "acme.calc" for _, d in plugins_only[1:])
    # each reader that went is unsubscribed: nothing is left on the bus
    await _until(lambda: not _readers(host), "the readers to unsubscribe")


async def test_a_slow_reader_loses_its_oldest_events_and_is_told(
    served: tuple[Any, httpx.AsyncClient],
) -> None:
    host, http = served
    got: list[tuple[str, Any]] = []
    burst = _system_events.QUEUE + 500
    async with http.stream("GET", "/api/v1/events", params={"max_events": 2}) as r:
        reader = asyncio.create_task(_read(r, got))
        await _until(lambda: len(_readers(host)) == 1, "the reader to subscribe")
        for i in range(burst):  # delivered to its queue before the stream can send one
            host.events.emit("test.burst", n=i)
        async with asyncio.timeout(20):
            await reader
    assert [e for e, _ in got] == ["open", "dropped", "system", "system"]
    assert got[1][1] == {"dropped": 500}  # the oldest went; what is left is in order
    assert [d["data"]["n"] for _, d in got[2:]] == [500, 501]
    # the host's own listeners lost nothing
    assert host.events.dropped == 0 and host.events.counts["test.burst"] == burst


async def test_a_reader_that_goes_is_unsubscribed_and_a_stopping_host_ends_the_stream(
    make_host: Callable[..., Any], plugins: PluginFactory
) -> None:
    plugins("acme.calc", CALC)
    host = make_host()
    got: list[tuple[str, Any]] = []
    async with host:
        async with api_served(host) as (url, token):
            auth = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
                async with http.stream("GET", "/api/v1/events") as gone:
                    async for line in gone.aiter_lines():
                        if line.startswith("event: open"):
                            break  # the reader closes the connection here
                await _until(lambda: not _readers(host), "a closed reader to unsubscribe")
                unauthorised = await http.get("/api/v1/events", headers={"Authorization": ""})
                assert unauthorised.status_code == 401

            async def follow() -> None:
                async with (
                    httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http,
                    http.stream("GET", "/api/v1/events") as r,
                ):
                    await _read(r, got)

            reader = asyncio.create_task(follow())
            await _until(lambda: len(_readers(host)) == 1, "the reader to subscribe")
            # the API stops serving while the stream is open: the stream ends, cleanly
        async with asyncio.timeout(20):
            await reader
        assert not _readers(host)
    assert [e for e, _ in got] == ["open"]


async def test_a_read_token_may_follow_the_events(served: tuple[Any, httpx.AsyncClient]) -> None:
    from plugbay.web.scopes import create_token

    host, http = served
    _, secret = create_token(host.state, ["call:acme.other"], expires=None, note=None)
    got: list[tuple[str, Any]] = []
    headers = {"Authorization": f"Bearer {secret}"}  # every scope reads
    async with http.stream("GET", "/api/v1/events", params={"max_events": 1}, headers=headers) as r:
        assert r.status_code == 200
        reader = asyncio.create_task(_read(r, got))
        await _until(lambda: len(_readers(host)) == 1, "the reader to subscribe")
        host.events.emit("host.note")
        async with asyncio.timeout(20):
            await reader
    assert [(e, d.get("kind")) for e, d in got] == [("open", None), ("system", "host.note")]


def test_plugbay_events_follows_a_running_host(tmp_path: Any) -> None:
    """`plugbay events` prints what happens on the host serving the state directory, and
    says what to do when none serves it."""
    import subprocess
    import sys

    from tests._cli import cli_env, plugbay
    from tests._running import plugbay_run

    none = plugbay("events", cwd=tmp_path)
    assert none.returncode == 1 and "no host with an HTTP API serves" in none.stderr
    assert "plugbay run" in none.stderr
    PluginFactory(tmp_path / "plugins")("acme.calc", CALC)
    with plugbay_run(tmp_path):
        follow = subprocess.Popen(
            [sys.executable, "-m", "plugbay.cli", "events", "--kind", "plugin.*",
             "--count", "3", "--json"], cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=cli_env(),
        )  # fmt: skip
        try:
            assert follow.stderr is not None
            opened = follow.stderr.readline()  # subscribed: what happens from now is shown
            assert "following events (plugin.*)" in opened, opened
            for step in ("disable", "enable"):
                done = plugbay(step, "acme.calc", cwd=tmp_path)
                assert done.returncode == 0, done.stderr
            out, rest = follow.communicate(timeout=60)
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.wait()
    assert follow.returncode == 0, rest
    seen = [json.loads(line) for line in out.splitlines()]
    assert [(e["kind"], e["data"]["plugin"]) for e in seen] == [
        ("plugin.unloaded", "acme.calc"),
        ("plugin.disabled", "acme.calc"),
        ("plugin.loaded", "acme.calc"),
    ]
    assert all(e["source"] == "host" and e["time"] > 0 for e in seen)


def test_an_event_line_leads_with_its_kind_and_plugin() -> None:
    from plugbay.cli.system_events import _line

    event = {"kind": "plugin.upgraded", "source": "host", "time": 0.0,
             "data": {"previous": "1.0.0", "plugin": "acme.calc", "version": "1.1.0"}}  # fmt: skip
    assert _line(event).split("  ")[1:] == [
        "plugin.upgraded", "acme.calc", "version=1.1.0 previous=1.0.0"
    ]  # fmt: skip
    denied = {"kind": "security.denied", "source": "acme.wasm", "time": 0.0,
              "data": {"what": "fs"}}  # fmt: skip
    assert _line(denied).split("  ")[1:] == ["security.denied", "acme.wasm", "what=fs"]
