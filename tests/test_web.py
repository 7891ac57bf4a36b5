"""The HTTP API, served by a real uvicorn on 127.0.0.1 over a real host and state."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.web.token import TokenFile
from tests._served import Served, api_served
from tests.conftest import PluginFactory

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        \"\"\"Add two integers.\"\"\"
        return a + b

    @command
    def boom(self) -> int:
        raise ValueError("no luck")
"""

GREETER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        self.greeting = context.config["greeting"]
        context.logger.info("greeter ready")

    @command
    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}!"
"""


class Api:
    def __init__(self, host: Any, served: Served) -> None:
        self.host = host
        self.server = served.server
        self.token = served.token
        self.url = served.url
        self.auth = {"Authorization": f"Bearer {served.token}"}
        self.http = httpx.AsyncClient(base_url=served.url, headers=self.auth, timeout=30)


@pytest.fixture
async def api(make_host: Callable[..., Any], plugins: PluginFactory) -> AsyncIterator[Api]:
    plugins("acme.calc", CALC)
    plugins(
        "acme.greeter", GREETER,
        extra='[dependencies]\n"acme.calc" = "^1"\n[config.greeting]\ntype = "string"\n'
        'default = "Hello"\nmax-length = 20\n',
    )  # fmt: skip
    host = make_host()
    async with host, api_served(host, max_body=4096) as served:
        a = Api(host, served)
        try:
            yield a
        finally:
            await a.http.aclose()


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- security


def test_token_is_made_once_private_and_rotates(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "state")
    first, made = tokens.ensure()
    assert made and len(first) >= 32
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    assert tokens.ensure() == (first, False)
    second = tokens.rotate()
    assert second != first and tokens.matches(second) and not tokens.matches(first)
    tokens.path.chmod(0o644)
    assert not TokenFile(tmp_path / "state").matches(second)  # readable by others: refused


async def test_only_healthz_is_open(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        for path in ("/api/v1/plugins", "/readyz", "/metrics", "/openapi.json", "/"):
            r = await anonymous.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert error_of(r)["code"] == "unauthorized"
            assert "'plugbay token' shows the token" in error_of(r)["hint"]


async def test_a_wrong_or_malformed_token_is_refused_with_what_to_do(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as c:
        wrong = await c.get("/api/v1/plugins", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and error_of(wrong)["code"] == "token_invalid"
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        basic = await c.get("/api/v1/plugins", headers={"Authorization": "Basic abc"})
        assert basic.status_code == 401
        assert "is not 'Bearer <token>'" in error_of(basic)["message"]
        # a rotated token stops working at once, without restarting the host
        TokenFile(api.host.state_dir).rotate()
        old = await c.get("/api/v1/plugins", headers=api.auth)
        assert old.status_code == 401 and error_of(old)["code"] == "token_invalid"


async def test_the_dashboard_link_signs_in_with_a_cookie_that_cannot_cross_origins(
    api: Api,
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as browser:
        page = await browser.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 401 and "Paste the host's API token" in page.text
        login = await browser.get(f"/?token={api.token}")
        assert login.status_code == 303 and login.headers["location"] == "/"
        assert "HttpOnly" in login.headers["set-cookie"]
        assert "SameSite=Strict" in login.headers["set-cookie"]
        assert (await browser.get("/")).status_code == 200  # the cookie now
        same = await browser.post("/api/v1/plugins/acme.calc/reload", headers={"Origin": api.url})
        assert same.status_code == 200
        cross = await browser.post(
            "/api/v1/plugins/acme.calc/reload", headers={"Origin": "http://evil.example"}
        )
        assert cross.status_code == 403 and error_of(cross)["code"] == "cross_origin"
        bad_link = await browser.get("/?token=wrong", headers={"Accept": "text/html"})
        assert bad_link.status_code == 401


async def test_changes_are_security_events_with_the_caller(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plugbay.security")
    r = await api.http.post(
        "/api/v1/plugins/acme.greeter/disable", json={"reason": "maintenance"},
        headers={"User-Agent": "ops-script/1"},
    )  # fmt: skip
    assert r.status_code == 200
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.post("/api/v1/plugins/acme.greeter/enable")).status_code == 401
    messages = [r.getMessage() for r in caplog.records if r.name == "plugbay.security"]
    assert any(
        m.startswith("POST /api/v1/plugins/acme.greeter/disable by 127.0.0.1:") and "→ 200" in m
        for m in messages
    ), messages
    assert any("enable by 127.0.0.1" in m and "→ 401" in m for m in messages), messages
    events = api.host.state.history("acme.greeter", limit=10)
    http = [e for e in events if e.action == "http"]
    assert http and http[0].details["user_agent"] == "ops-script/1"
    assert http[0].details["auth"] == "bearer" and http[0].details["status"] == 200
    assert api.host.events.counts["security.http.request"] >= 1
    assert api.host.events.counts["security.http.denied"] >= 1
    await api.host.events.drain()
    logged = (await api.http.get("/api/v1/logs", params={"plugin": "acme.greeter"})).json()
    assert any(
        r["message"].startswith("HTTP: POST /api/v1/plugins/acme.greeter/disable by 127.0.0.1:")
        for r in logged
    ), logged


async def test_bodies_are_size_limited(api: Api) -> None:
    big = {"a": 1, "pad": "x" * 10_000}
    r = await api.http.post("/api/v1/plugins/acme.calc/commands/add", json=big)
    assert r.status_code == 413 and error_of(r)["code"] == "body_too_large"
    assert "4,096 bytes" in error_of(r)["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 1000

    r = await api.http.post("/api/v1/plugins/acme.calc/commands/add", content=chunks())
    assert r.status_code == 413
    # the host keeps serving
    ok = await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 2})
    assert ok.json() == {"result": 3}


# --------------------------------------------------------------------------- reading


async def test_list_and_detail(api: Api) -> None:
    rows = {r["id"]: r for r in (await api.http.get("/api/v1/plugins")).json()}
    assert rows["acme.calc"]["state"] == "active" and rows["acme.calc"]["version"] == "1.0.0"
    assert rows["acme.greeter"]["needs"] == ["acme.calc"]
    assert rows["acme.calc"]["isolation"] == "inline" and rows["acme.calc"]["uptime_seconds"] >= 0
    detail = (await api.http.get("/api/v1/plugins/acme.calc")).json()
    assert detail["dependents"] == ["acme.greeter"]
    add = next(c for c in detail["commands"] if c["name"] == "add")
    assert add["signature"] == "add(a: int, b: int = 1) -> int"
    assert add["params_schema"]["properties"]["a"] == {"type": "integer"}
    assert add["params_schema"]["required"] == ["a"]
    assert add["result_schema"] == {"type": "integer"}
    assert detail["usage"]["rss_bytes"] > 0
    assert detail["manifest"]["id"] == "acme.calc"


async def test_unknown_plugin_and_command_are_404_with_a_suggestion(api: Api) -> None:
    r = await api.http.get("/api/v1/plugins/acme.calk")
    assert r.status_code == 404
    assert error_of(r)["code"] == "plugin_not_found"
    assert "did you mean 'acme.calc'" in error_of(r)["hint"]
    r = await api.http.post("/api/v1/plugins/acme.calc/commands/ad", json={})
    assert r.status_code == 404 and "did you mean 'add'" in error_of(r)["hint"]
    r = await api.http.get("/api/v1/nothing-here")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


# --------------------------------------------------------------------------- calling


async def test_call_checks_the_body_against_the_commands_types(api: Api) -> None:
    url = "/api/v1/plugins/acme.calc/commands/add"
    assert (await api.http.post(url, json={"a": 2, "b": 40})).json() == {"result": 42}
    wrong = await api.http.post(url, json={"a": "two"})
    assert wrong.status_code == 422
    assert error_of(wrong)["message"] == "command 'add' parameter 'a' expects int, got str"
    assert error_of(wrong)["hint"] == "call it as add(a: int, b: int = 1) -> int"
    missing = await api.http.post(url, json={})
    assert missing.status_code == 422 and "missing parameter 'a'" in error_of(missing)["message"]
    extra = await api.http.post(url, json={"a": 1, "c": 2})
    assert extra.status_code == 422 and "has no parameter 'c'" in error_of(extra)["message"]
    not_object = await api.http.post(url, json=[1, 2])
    assert not_object.status_code == 422
    assert "must be a JSON object of parameters, not list" in error_of(not_object)["message"]
    malformed = await api.http.post(
        url, content=b"{a: 1", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and error_of(malformed)["code"] == "body_invalid"


async def test_a_plugins_own_error_is_502_and_the_host_keeps_serving(api: Api) -> None:
    r = await api.http.post("/api/v1/plugins/acme.calc/commands/boom")
    assert r.status_code == 502
    assert error_of(r)["code"] == "plugin_raised"
    assert "raised ValueError: no luck" in error_of(r)["message"]
    ok = await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 1})
    assert ok.status_code == 200


# --------------------------------------------------------------------------- operations


async def test_reload_serves_the_new_version(api: Api, plugins: PluginFactory) -> None:
    manifest = plugins.root / "acme.calc-1.0.0" / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.1.0"'))
    r = await api.http.post("/api/v1/plugins/acme.calc/reload")
    assert r.status_code == 200
    assert r.json()["plugin"]["version"] == "1.1.0" and r.json()["affected"] == ["acme.calc"]
    # a version that goes backwards is refused; the old one keeps serving
    manifest.write_text(manifest.read_text().replace('"1.1.0"', '"0.9.0"'))
    bad = await api.http.post("/api/v1/plugins/acme.calc/reload")
    assert bad.status_code == 409 and error_of(bad)["code"] == "reload_failed"
    assert "1.1.0 keeps serving" in error_of(bad)["message"]
    assert (await api.http.get("/api/v1/plugins/acme.calc")).json()["version"] == "1.1.0"
    back = await api.http.post("/api/v1/plugins/acme.calc/rollback")
    assert back.status_code == 200, back.text
    assert back.json()["plugin"]["version"] == "1.0.0"


async def test_disable_enable_unload_load(api: Api) -> None:
    refused = await api.http.post("/api/v1/plugins/acme.calc/unload")
    assert refused.status_code == 409 and error_of(refused)["code"] == "plugin_has_dependents"
    r = await api.http.post("/api/v1/plugins/acme.calc/disable", json={"cascade": True})
    assert r.status_code == 200
    assert r.json()["plugin"]["state"] == "disabled"
    assert r.json()["affected"] == ["acme.greeter", "acme.calc"]
    call = await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 1})
    assert (
        call.status_code == 409 and "is disabled, so it takes no calls" in error_of(call)["message"]
    )
    r = await api.http.post("/api/v1/plugins/acme.calc/enable")
    assert r.json()["plugin"]["state"] == "active"
    r = await api.http.post("/api/v1/plugins/acme.greeter/load")
    assert r.status_code == 200 and r.json()["plugin"]["state"] == "active"
    again = await api.http.post("/api/v1/plugins/acme.greeter/load")
    assert again.status_code == 409 and "already active" in error_of(again)["message"]
    r = await api.http.post("/api/v1/plugins/acme.greeter/unload")
    assert r.json()["plugin"]["state"] == "stopped"
    bad = await api.http.post("/api/v1/plugins/acme.calc/disable", json={"cascade": "maybe"})
    assert bad.status_code == 422 and error_of(bad)["code"] == "request_invalid"
    assert "cascade" in error_of(bad)["message"]


async def test_config_is_checked_before_it_is_applied(api: Api) -> None:
    url = "/api/v1/plugins/acme.greeter/config"
    view = (await api.http.get(url)).json()
    assert view["config"] == {"greeting": "Hello"} and view["runtime"] == {}
    assert view["schema"]["greeting"]["type"] == "string"
    too_long = await api.http.put(url, json={"values": {"greeting": "x" * 50}})
    assert too_long.status_code == 422 and error_of(too_long)["code"] == "config_invalid"
    assert "config key 'greeting' is invalid" in error_of(too_long)["message"]
    unknown = await api.http.put(url, json={"values": {"greting": "Hi"}})
    assert (
        unknown.status_code == 422
        and "unknown config key 'greting'" in error_of(unknown)["message"]
    )
    ok = await api.http.put(url, json={"values": {"greeting": "Howdy"}})
    assert ok.status_code == 200 and ok.json()["config"] == {"greeting": "Howdy"}
    r = await api.http.post("/api/v1/plugins/acme.greeter/commands/greet", json={"name": "Ada"})
    assert r.json() == {"result": "Howdy, Ada!"}
    assert api.host.state.get_config("acme.greeter") == {"greeting": "Howdy"}
    none = await api.http.put("/api/v1/plugins/acme.calc/config", json={"values": {"x": 1}})
    assert none.status_code == 422 and "declares none" in error_of(none)["message"]


# --------------------------------------------------------------------------- health, metrics


async def test_health_readiness_history_and_metrics(api: Api) -> None:
    await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 1})
    health = (await api.http.get("/api/v1/health")).json()
    assert health["status"] == "green" and health["counts"] == {"active": 2}
    assert health["plugins"] == {"acme.calc": "green", "acme.greeter": "green"}
    assert {c["plugin"]: c["live"] for c in health["checks"]} == {
        "acme.calc": True,
        "acme.greeter": True,
    }
    assert (await api.http.get("/readyz")).json() == {
        "ready": True,
        "status": "ready",
        "active": 2,
        "wanted": 2,
        "failed": [],
    }
    history = (await api.http.get("/api/v1/history", params={"plugin": "acme.calc"})).json()
    assert history[0]["action"] == "load" and history[0]["result"] == "ok"
    assert (await api.http.get("/api/v1/history", params={"limit": 0})).status_code == 422
    text = (await api.http.get("/metrics")).text
    assert 'plugbay_calls_total{command="add",plugin="acme.calc",version="1.0.0"} 1.0' in text
    figures = (await api.http.get("/api/v1/metrics")).json()
    assert figures["acme.calc"]["calls"] == 1


async def test_logs_and_alerts_of_the_monitor(api: Api) -> None:
    r = await api.http.get("/api/v1/logs", params={"plugin": "acme.greeter"})
    records = r.json()
    assert any(x["message"] == "greeter ready" and x["level"] == "info" for x in records), records
    assert all(x["plugin"] == "acme.greeter" for x in records)
    quiet = await api.http.get("/api/v1/logs", params={"plugin": "acme.greeter", "level": "error"})
    assert quiet.json() == []
    assert (await api.http.get("/api/v1/logs", params={"plugin": "acme.nope"})).status_code == 404
    bad = await api.http.get("/api/v1/logs", params={"level": "loud"})
    assert bad.status_code == 422 and "level" in error_of(bad)["message"]
    assert (await api.http.get("/api/v1/alerts")).json() == []  # nothing misbehaves here
    assert (await api.http.get("/api/v1/alerts", params={"plugin": "acme.nope"})).status_code == 404


async def test_the_stream_sends_live_figures(api: Api) -> None:
    for i in range(5):
        await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": i})
    api.server.web.series.sample()
    events = []
    async with api.http.stream("GET", "/api/v1/stream", params={"max_events": 2}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert len(events) == 2
    calc = events[-1]["plugins"]["acme.calc"]
    assert calc["state"] == "active" and calc["version"] == "1.0.0" and calc["calls"] == 5
    assert calc["memory_mb"] > 0 and calc["memory_shared"] is True and calc["memory_of"] == "host"
    series = (await api.http.get("/api/v1/plugins/acme.calc/series")).json()
    assert series["points"][-1]["calls"] == 5


async def test_dependency_graph_is_a_picture(api: Api) -> None:
    r = await api.http.get("/api/v1/graph.svg")
    assert r.headers["content-type"] == "image/svg+xml"
    assert '<g class="node" data-plugin="acme.calc" data-state="active">' in r.text
    assert 'data-from="acme.greeter" data-to="acme.calc"' in r.text


# --------------------------------------------------------------------------- plugbay.client


async def test_the_client_gives_the_hosts_errors_as_plugbay_errors(
    api: Api, tmp_path: Path
) -> None:
    import asyncio

    from plugbay.api.errors import ParameterError, PlugbayError, PluginNotFound
    from plugbay.web.client import HostClient, connect

    assert connect(tmp_path / "nothing-runs-here") is None

    def use() -> None:
        with HostClient(api.url, api.token) as client:
            assert client.call("acme.calc", "add", {"a": 1, "b": 2}) == 3
            assert {p["id"] for p in client.plugins()} == {"acme.calc", "acme.greeter"}
            with pytest.raises(ParameterError) as bad:
                client.call("acme.calc", "add", {"a": "x"})
            assert bad.value.hint == "call it as add(a: int, b: int = 1) -> int"
            with pytest.raises(PluginNotFound):
                client.info("acme.nope")
        with HostClient(api.url, "not-the-token") as client, pytest.raises(PlugbayError) as denied:
            client.plugins()
        assert denied.value.code == "token_invalid" and denied.value.details["status"] == 401

    await asyncio.to_thread(use)


async def test_wrong_method_says_which_ones_the_path_takes(api: Api) -> None:
    r = await api.http.delete("/api/v1/plugins/acme.greeter/config")
    assert r.status_code == 405 and r.headers["allow"] == "GET, PUT"
    assert error_of(r)["hint"].startswith("use GET, PUT")


async def test_chart_points_are_the_figures_of_each_interval(api: Api) -> None:
    from plugbay.web._series import Series

    series = Series(api.host, interval=1.0)
    series.sample()
    for i in range(8):
        await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": i})
    for _ in range(2):
        await api.http.post("/api/v1/plugins/acme.calc/commands/boom")
    point = series.sample()["acme.calc"]
    assert point["calls"] == 10 and point["errors"] == 2
    assert point["error_rate"] == 0.2
    assert point["calls_per_s"] > 0 and point["p50_ms"] > 0 and point["p99_ms"] >= point["p50_ms"]
    quiet = series.sample()["acme.calc"]  # nothing happened in this interval
    assert quiet["calls_per_s"] == 0 and quiet["error_rate"] == 0 and quiet["p99_ms"] is None
    assert [p["calls"] for p in series.history("acme.calc")] == [0, 10, 10]


# --------------------------------------------------------------------------- the document


async def test_the_document_holds_each_plugins_own_config_body(api: Api) -> None:
    doc = (await api.http.get("/openapi.json")).json()
    paths = doc["paths"]
    assert "/api/v1/plugins/{plugin_id}/config" not in paths
    greeter = paths["/api/v1/plugins/acme.greeter/config"]
    assert set(greeter) == {"get", "put"}
    body = greeter["put"]["requestBody"]["content"]["application/json"]["schema"]
    values = body["properties"]["values"]
    assert values["additionalProperties"] is False
    assert values["properties"]["greeting"] == {"type": "string", "maxLength": 20}
    calc = paths["/api/v1/plugins/acme.calc/config"]["put"]
    calc_values = calc["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert calc_values["values"]["maxProperties"] == 0  # it declares no config
    url = "/api/v1/plugins/acme.greeter/config"
    # what the schema refuses, the server refuses; what it allows, the server takes
    typed = await api.http.put(url, json={"values": {"greeting": 5}})
    assert typed.status_code == 422 and "5 is not text of at most 20" in error_of(typed)["message"]
    ok = await api.http.put(url, json={"values": {"greeting": "Hi"}})
    assert ok.status_code == 200 and ok.json()["config"] == {"greeting": "Hi"}
    # a stopped plugin is still known: its config can still be set
    await api.http.post("/api/v1/plugins/acme.greeter/unload")
    assert (
        "/api/v1/plugins/acme.greeter/config"
        in (await api.http.get("/openapi.json")).json()["paths"]
    )


async def test_an_integer_key_takes_an_integral_number(
    make_host: Callable[..., Any], plugins: PluginFactory
) -> None:
    plugins("acme.sized", extra='[config.size]\ntype = "integer"\ndefault = 3\nminimum = 1\n')
    host = make_host()
    async with (
        host,
        api_served(host) as (base, token),
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        url = "/api/v1/plugins/acme.sized/config"
        whole = await http.put(url, json={"values": {"size": 7.0}})
        assert whole.status_code == 200 and whole.json()["config"] == {"size": 7}
        assert host.state.get_config("acme.sized") == {"size": 7}
        for bad in ("7", 7.5, 0, True):
            r = await http.put(url, json={"values": {"size": bad}})
            assert r.status_code == 422, (bad, r.text)
        # the hint names the real path to read the schema at, not the template's
        hint = error_of(await http.put(url, json={"values": {"size": "7"}}))["hint"]
        assert hint == (
            "set 'size' to a value it allows, such as 3 (its default); GET "
            + url
            + " shows the schema"
        )
        assert host.plugin("acme.sized").config == {"size": 7}  # the old value stays


async def test_rollback_without_an_earlier_version_is_a_conflict(api: Api) -> None:
    url = "/api/v1/plugins/acme.calc/rollback"
    r = await api.http.post(url)
    assert r.status_code == 409 and "no earlier version" in error_of(r)["message"]
    bad = await api.http.post(url, json={"to": "one.two"})
    assert bad.status_code == 422 and error_of(bad)["code"] == "request_invalid"
    schema = (await api.http.get("/openapi.json")).json()["components"]["schemas"]
    assert "pattern" in schema["RollbackRequest"]["properties"]["to"]["anyOf"][0]


async def test_each_stream_event_is_what_the_document_says(api: Api) -> None:
    from plugbay.web._models import StreamSample

    doc = (await api.http.get("/openapi.json")).json()
    event = doc["paths"]["/api/v1/stream"]["get"]["responses"]["200"]["content"][
        "text/event-stream"
    ]["schema"]
    assert event["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/StreamSample"
    }
    assert "SeriesPoint" in doc["components"]["schemas"]
    async with api.http.stream("GET", "/api/v1/stream", params={"max_events": 1}) as r:
        text = (await r.aread()).decode()
    data = next(line[6:] for line in text.splitlines() if line.startswith("data: "))
    sample = StreamSample.model_validate_json(data)  # strict enough: extra fields would pass
    assert set(sample.plugins) == {"acme.calc", "acme.greeter"}
    assert set(json.loads(data)["plugins"]["acme.calc"]) == set(
        doc["components"]["schemas"]["SeriesPoint"]["properties"]
    )


async def test_allow_names_the_methods_for_a_plugin_the_document_does_not_list(api: Api) -> None:
    known = await api.http.delete("/api/v1/plugins/acme.greeter/config")
    unknown = await api.http.delete("/api/v1/plugins/acme.nobody/config")
    assert known.status_code == unknown.status_code == 405
    assert known.headers["allow"] == unknown.headers["allow"] == "GET, PUT"


# --------------------------------------------------------------------------- operators' answers

KEEPER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def key(self) -> str:
        return self.context.config["api-key"]
"""


@pytest.fixture
async def keeper(make_host: Callable[..., Any], plugins: PluginFactory) -> AsyncIterator[Api]:
    """A plugin with a secret config field that asks for a permission it is not granted."""
    plugins(
        "acme.keeper", KEEPER,
        extra='[permissions]\nenv = ["HOME"]\n'
        '[config.api-key]\ntype = "string"\ndefault = "k0"\nsecret = true\n'
        '[config.greeting]\ntype = "string"\ndefault = "Hello"\n',
    )  # fmt: skip
    host = make_host(inline=["*"])
    async with host, api_served(host) as served:
        a = Api(host, served)
        try:
            yield a
        finally:
            await a.http.aclose()


async def test_a_denied_permission_is_shown_denied_not_pending(keeper: Api) -> None:
    url = "/api/v1/plugins/acme.keeper"
    # (inline: an env: permission still waits for a grant; network: would be unconfined)
    permission = "env:HOME"
    assert (await keeper.http.get(url)).json()["permissions"]["pending"] == [permission]
    r = await keeper.http.post(f"{url}/deny", json={"permission": permission})
    assert r.status_code == 200 and r.json()["denied"] is True
    shown = (await keeper.http.get(url)).json()["permissions"]
    assert (shown["pending"], shown["denied"]) == ([], [permission])
    # denying again is the same answer, recorded once
    assert (await keeper.http.post(f"{url}/deny", json={"permission": permission})).is_success
    denies = [e for e in keeper.host.history("acme.keeper") if e.action == "deny"]
    assert len(denies) == 1
    # a grant settles it; a revoke asks the operator again
    granted = await keeper.http.post(f"{url}/grants", json={"permission": permission})
    assert granted.json()["permissions"]["denied"] == []
    revoked = (await keeper.http.post(f"{url}/revoke", json={"permission": permission})).json()
    assert (revoked["permissions"]["pending"], revoked["permissions"]["denied"]) == (
        [permission],
        [],
    )


async def test_secret_config_values_are_masked_and_kept_when_sent_back(keeper: Api) -> None:
    url = "/api/v1/plugins/acme.keeper/config"
    r = await keeper.http.put(url, json={"values": {"api-key": "s3cret"}})
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["config"]["api-key"] == "***" and view["runtime"] == {"api-key": "***"}
    assert view["config"]["greeting"] == "Hello"
    got = (await keeper.http.get(url)).json()
    assert "s3cret" not in json.dumps(got)
    assert "s3cret" not in (await keeper.http.get("/api/v1/plugins/acme.keeper")).text
    # what the dashboard and 'plugbay config' send back: the run-time values as shown, plus
    # the change; the secret keeps its value
    values = {**got["runtime"], "greeting": "Hi"}
    assert (await keeper.http.put(url, json={"values": values})).status_code == 200
    assert await keeper.host.call("acme.keeper", "key") == "s3cret"
    assert keeper.host.runtime_config("acme.keeper") == {"api-key": "s3cret", "greeting": "Hi"}
