"""What an integrator meets at the HTTP API's edges, on a real server: a path with a
trailing slash, a list's ``plugin`` filter, a batch element that is not an object, and
JSON sent as ``text/plain``."""

from __future__ import annotations

import pytest

from tests.test_web import Api, api, error_of

__all__ = ["api"]  # the fixture, shared with test_web


@pytest.mark.parametrize(
    ("method", "path", "use"),
    [
        ("GET", "/api/v1/plugins/", "/api/v1/plugins"),
        ("GET", "/api/v1/plugins/acme.calc/", "/api/v1/plugins/acme.calc"),
        (
            "POST",
            "/api/v1/plugins/acme.calc/commands/add/",
            "/api/v1/plugins/acme.calc/commands/add",
        ),
    ],
)
async def test_a_trailing_slash_is_a_404_naming_the_path_to_use(
    api: Api, method: str, path: str, use: str
) -> None:
    """It was a 307 with an empty body: ``curl -sf`` printed nothing at all."""
    r = await api.http.request(method, path, json={"a": 1})
    assert r.status_code == 404, r.text
    error = error_of(r)
    assert error["code"] == "not_found"
    assert error["hint"].startswith(f"use {use} (without the trailing slash); "), error["hint"]
    same = await api.http.request(method, use, json={"a": 1})
    assert same.status_code == 200, same.text


async def test_a_path_that_is_no_route_with_a_slash_or_without_names_none(api: Api) -> None:
    r = await api.http.get("/nowhere/")
    assert r.status_code == 404
    assert not error_of(r)["hint"].startswith("use ")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/history?plugin=acme.clac",
        "/api/v1/plugins/acme.clac/history",
        "/api/v1/logs?plugin=acme.clac",
        "/api/v1/alerts?plugin=acme.clac",
        "/api/v1/alerts?plugin=acme.clac&all=true",
    ],
)
async def test_a_list_filtered_by_an_id_never_seen_is_a_404_with_the_near_name(
    api: Api, path: str
) -> None:
    """``/history?plugin=`` answered ``200 []`` where ``/logs?plugin=`` answered 404."""
    r = await api.http.get(path)
    assert r.status_code == 404, r.text
    error = error_of(r)
    assert error["code"] == "plugin_not_found"
    assert error["message"] == "no plugin 'acme.clac' is known to this host"
    assert "did you mean 'acme.calc'?" in error["hint"]


async def test_the_history_of_a_plugin_the_host_no_longer_knows_is_still_served(api: Api) -> None:
    assert api.host.state is not None
    api.host.state.add_event("acme.gone", "uninstall", version="1.0.0", reason="removed by hand")
    for path in ("/api/v1/history?plugin=acme.gone", "/api/v1/plugins/acme.gone/history"):
        r = await api.http.get(path)
        assert r.status_code == 200, (path, r.text)
        assert [(e["action"], e["reason"]) for e in r.json()] == [("uninstall", "removed by hand")]
    for path in ("/api/v1/logs?plugin=acme.gone", "/api/v1/alerts?plugin=acme.gone&all=true"):
        r = await api.http.get(path)
        assert (r.status_code, r.json()) == (200, []), (path, r.text)
    known = await api.http.get("/api/v1/history", params={"plugin": "acme.calc"})
    assert known.status_code == 200 and known.json()  # its load is there


BATCH = "/api/v1/plugins/acme.calc/commands/add/batch"


async def test_a_batch_element_that_is_not_an_object_is_named_by_its_index(api: Api) -> None:
    r = await api.http.post(BATCH, json={"params": [{"a": 1}, 3]})
    assert r.status_code == 422, r.text
    error = error_of(r)
    assert error["code"] == "parameter_invalid"
    assert error["message"].endswith("params[1] is a number (3)"), error["message"]
    assert (error["where"], error["details"]["index"]) == ("params[1]", 1)
    assert '{"params": [{...}, {...}]}' in error["hint"]


async def test_a_parameter_error_inside_a_batch_names_its_call(api: Api) -> None:
    r = await api.http.post(BATCH, json={"params": [{"a": 1}, {"a": 2}, {"a": "x"}]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[:2] == [{"result": 2}, {"result": 3}]
    error = results[2]["error"]
    assert error["code"] == "parameter_invalid"
    assert error["where"].startswith("params[2], "), error["where"]
    assert error["details"]["index"] == 2
    assert "(at params[2], " in error["text"]


TEXT = {"Content-Type": "text/plain"}


async def test_json_sent_as_text_plain_is_read_as_json_on_every_route(api: Api) -> None:
    """A command route took it (200) where the FastAPI routes refused it (422)."""
    call = await api.http.post(
        "/api/v1/plugins/acme.calc/commands/add", content=b'{"a": 2, "b": 3}', headers=TEXT
    )
    assert (call.status_code, call.json()) == (200, {"result": 5})
    config = await api.http.put(
        "/api/v1/plugins/acme.greeter/config", content=b'{"values": {"greeting": "Hey"}}',
        headers=TEXT,
    )  # fmt: skip
    assert config.status_code == 200, config.text
    assert await api.host.call("acme.greeter", "greet", name="Ada") == "Hey, Ada!"
    disabled = await api.http.post(
        "/api/v1/plugins/acme.greeter/disable", content=b'{"reason": "maintenance"}', headers=TEXT
    )
    assert disabled.status_code == 200, disabled.text
    rec = api.host.plugin("acme.greeter")
    assert (str(rec.state), rec.reason) == ("disabled", "maintenance")
    # text that is not JSON is refused on both alike, saying how to send it
    for path in ("/api/v1/plugins/acme.calc/commands/add", "/api/v1/plugins/acme.calc/grants"):
        r = await api.http.post(path, content=b"a=2", headers=TEXT)
        assert r.status_code == 422, (path, r.text)
        assert error_of(r)["message"].startswith(
            "the request body is not JSON: it came as text/plain"
        )
