"""HTTP edges on a real server: deep and malformed bodies, 5xx with a request id the log
has too, anti-framing headers, and the Origin a cookie-authenticated change needs."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import httpx
import pytest

from plugbay.web._gate import MAX_JSON_DEPTH, Gate
from plugbay.web._slow_clients import HeadDeadline
from tests.test_web import Api, api, error_of

__all__ = ["api"]  # the fixture, shared with test_web

DEEP = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"


async def test_a_1000_deep_body_is_a_400_and_the_host_keeps_serving(api: Api) -> None:
    for method, path in (
        ("POST", "/api/v1/plugins/acme.calc/commands/add"),
        ("PUT", "/api/v1/plugins/acme.greeter/config"),
        ("POST", "/api/v1/plugins/acme.calc/disable"),
    ):
        r = await api.http.request(
            method, path, content=DEEP, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400, (path, r.text)
        assert error_of(r)["code"] == "body_too_deep"
        assert f"more than {MAX_JSON_DEPTH} levels deep" in error_of(r)["message"]
    # nesting inside a string is text, not depth
    text = "[" * 1000
    r = await api.http.post("/api/v1/plugins/acme.greeter/commands/greet", json={"name": text})
    assert r.status_code == 200 and r.json()["result"].endswith(text + "!")
    r = await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 2, "b": 3})
    assert r.json() == {"result": 5}
    assert str(api.host.plugin("acme.calc").state) == "active"  # the disable never happened


@pytest.mark.parametrize(
    "body", [b"{", b'{"a": 1,}', b"\xff\xfe", b'{"values": ' + b"[" * 60 + b"]" * 60 + b"}"]
)
async def test_a_malformed_body_is_a_4xx(api: Api, body: bytes) -> None:
    for path, method in (
        ("/api/v1/plugins/acme.calc/commands/add", "POST"),
        ("/api/v1/plugins/acme.greeter/config", "PUT"),
    ):
        r = await api.http.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)
        assert "error" in r.json()


async def test_every_response_carries_a_request_id_and_anti_framing_headers(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        responses = [
            await anonymous.get("/healthz"),
            await anonymous.get("/api/v1/plugins"),  # 401
            await anonymous.get("/", headers={"Accept": "text/html"}),  # the sign-in page
            await api.http.get("/api/v1/plugins"),
            await api.http.get("/"),  # the dashboard
            await api.http.get("/nowhere"),  # 404
            await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 1}),
        ]
    ids = set()
    for r in responses:
        assert r.headers["x-frame-options"] == "DENY", r.url
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], r.url
        ids.add(r.headers["x-request-id"])
    assert len(ids) == len(responses)  # one per request
    given = await api.http.get("/api/v1/plugins", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"


async def test_a_5xx_is_logged_with_its_traceback_under_the_id_the_client_sees(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug in the host")

    monkeypatch.setattr(api.host, "plugins", broken)
    monkeypatch.setattr(api.host, "call_with", broken)
    with caplog.at_level(logging.ERROR, logger="plugbay.web"):
        for r in (
            await api.http.get("/api/v1/plugins"),
            await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 1}),
        ):
            assert r.status_code == 500
            request_id = r.headers["x-request-id"]
            body = r.json()
            assert body["error"]["code"] == "internal_error"
            assert body["error"]["request_id"] == request_id == body["request_id"]
            assert request_id in body["error"]["hint"]
            logged = [rec for rec in caplog.records if request_id in rec.getMessage()]
            assert any(rec.exc_info and "a bug in the host" in str(rec.exc_info[1])
                       for rec in logged), [rec.getMessage() for rec in caplog.records]  # fmt: skip


async def test_a_cookie_change_needs_a_matching_origin_and_a_bearer_client_none(
    api: Api,
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as browser:
        await browser.get(f"/?token={api.token}")
        path = "/api/v1/plugins/acme.calc/reload"
        missing = await browser.post(path)
        assert missing.status_code == 403
        assert "without an Origin header" in error_of(missing)["message"]
        for method in ("PUT", "DELETE"):
            r = await browser.request(method, "/api/v1/plugins/acme.greeter/config")
            assert r.status_code == 403, method
        assert (await browser.post(path, headers={"Origin": api.url})).status_code == 200
        assert (await browser.get("/api/v1/plugins")).status_code == 200  # reads need none
    assert (await api.http.post(path)).status_code == 200  # bearer: no cookie, no Origin


#: what ``curl -d BODY`` sends without ``-H 'Content-Type: application/json'``
CURL_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_a_json_body_curl_sent_as_a_form_is_read_as_json(api: Api) -> None:
    """``curl -d '{…}'`` forgets the Content-Type: the config, grants and disable routes
    take the JSON all the same, as the command routes do."""
    config = await api.http.put(
        "/api/v1/plugins/acme.greeter/config",
        content=b'{"values": {"greeting": "Hey"}}', headers=CURL_FORM,
    )  # fmt: skip
    assert config.status_code == 200, config.text
    assert config.json()["config"]["greeting"] == "Hey"
    assert await api.host.call("acme.greeter", "greet", name="Ada") == "Hey, Ada!"
    granted = await api.http.post(
        "/api/v1/plugins/acme.calc/grants", content=b'{"permission": "env:HOME"}', headers=CURL_FORM
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["permission"] == "env:HOME"
    assert api.host.state is not None and "env:HOME" in api.host.state.grants("acme.calc")
    disabled = await api.http.post(
        "/api/v1/plugins/acme.greeter/disable",
        content=b'{"reason": "maintenance"}', headers=CURL_FORM,
    )  # fmt: skip
    assert disabled.status_code == 200, disabled.text
    rec = api.host.plugin("acme.greeter")
    assert (str(rec.state), rec.reason) == ("disabled", "maintenance")


@pytest.mark.parametrize(
    ("headers", "sent"),
    [
        (CURL_FORM, "application/x-www-form-urlencoded"),
        ({"Content-Type": "text/plain"}, "text/plain"),
    ],
)
async def test_a_body_that_is_not_sent_as_json_is_refused_saying_how_to_send_it(
    api: Api, headers: dict[str, str], sent: str
) -> None:
    for method, path, body in (
        ("POST", "/api/v1/plugins/acme.greeter/disable", b"reason=maintenance"),
        ("PUT", "/api/v1/plugins/acme.greeter/config", b"greeting=Hey"),
        ("POST", "/api/v1/plugins/acme.calc/grants", b"permission=env:HOME"),
    ):
        # (JSON declared as text is taken for JSON: test_web_loose_ends)
        r = await api.http.request(method, path, content=body, headers=headers)
        assert r.status_code == 422, (path, r.text)
        error = error_of(r)
        assert error["message"].startswith(f"the request body is not JSON: it came as {sent}")
        assert "-H 'Content-Type: application/json'" in error["hint"]
    assert str(api.host.plugin("acme.greeter").state) == "active"  # nothing changed
    assert api.host.runtime_config("acme.greeter") == {}


@pytest.mark.parametrize(
    "path",
    ["/api/v1/plugins/acme.calc/commands/add", "/api/v1/plugins/acme.calc/commands/add/batch"],
)
async def test_a_call_curl_sent_as_a_form_that_is_not_json_is_a_422_saying_how_to_send_it(
    api: Api, path: str
) -> None:
    """``curl -d 'a=2&b=3'`` to a command: the docs' 422 naming the header, as the other
    routes answer (it was a 400 "JSON is malformed" that never named the header)."""
    r = await api.http.post(path, content=b"a=2&b=3", headers=CURL_FORM)
    assert r.status_code == 422, r.text
    error = error_of(r)
    assert error["code"] == "request_invalid"
    assert error["message"].startswith(
        "the request body is not JSON: it came as application/x-www-form-urlencoded"
    )
    assert "-H 'Content-Type: application/json'" in error["hint"]
    as_json = await api.http.post(
        path, content=b"a=2&b=3", headers={"Content-Type": "application/json"}
    )
    assert as_json.status_code == 400, as_json.text  # declared JSON, not JSON: still a 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/plugins/acme.greeter/config"),
        ("POST", "/api/v1/plugins/acme.greeter/disable"),
        ("POST", "/api/v1/plugins/acme.calc/grants"),
        ("POST", "/api/v1/plugins/acme.calc/commands/add"),
        ("POST", "/api/v1/plugins/acme.calc/commands/add/batch"),
    ],
)
async def test_a_body_sent_as_json_that_is_not_json_is_a_400_saying_where_it_breaks(
    api: Api, method: str, path: str
) -> None:
    """The documented status for "not JSON" is 400 on every route (it was a 422 naming
    ``body.11: JSON decode error`` on the routes FastAPI reads, and on a batch)."""
    r = await api.http.request(
        method, path, content=b'{"values": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["code"] == "body_invalid"
    assert error["message"].startswith("the request body is not")
    assert "JSON" in error["message"] and error["hint"]  # and what to send instead
    assert str(api.host.plugin("acme.greeter").state) == "active"  # nothing changed
    assert api.host.runtime_config("acme.greeter") == {}


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("//evil.example/x", "/evil.example/x"),
        ("/%5Cevil.example", "/evil.example"),
        ("/%2F%2Fevil.example", "/evil.example"),
        ("/caf%C3%A9", "/caf%C3%A9"),
    ],
)
async def test_the_sign_in_link_redirects_only_to_this_host(
    api: Api, path: str, location: str
) -> None:
    """``/?token=…`` drops the token for a cookie and redirects to the same path: a path
    such as ``//evil.example`` must not send the browser (signed in) to another site, and
    a path outside latin-1 is a redirect, not a 500."""
    async with httpx.AsyncClient(base_url=api.url) as browser:
        r = await browser.get(httpx.URL(f"{api.url}{path}?token={api.token}&tab=logs"))
        assert r.status_code == 303, r.text
        assert r.headers["location"] == f"{location}?tab=logs"
        assert "plugbay_token=" in r.headers["set-cookie"]


async def test_a_client_that_never_finishes_its_headers_is_answered_408_and_dropped(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that sends nothing, or headers that never end, was held open for
    ever before any token was asked for (a slowloris): now it has a bound, as a request
    being served does not."""
    monkeypatch.setattr(HeadDeadline, "head_seconds", 0.5)
    where = urlsplit(api.url)
    assert where.hostname is not None and where.port is not None

    async def answer_to(sent: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        try:
            writer.write(sent)
            await writer.drain()
            # bounded: without the deadline the server never answers, nor closes
            return await asyncio.wait_for(reader.read(), timeout=20)
        finally:
            writer.close()

    for sent in (b"", b"GET /api/v1/plugins HTTP/1.1\r\nHost: x\r\nX-Slow: "):
        answer = await answer_to(sent)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer
        assert b"x-request-id: " in head and b"x-frame-options: DENY" in head
        error = json.loads(body)["error"]
        assert error["code"] == "request_timeout"
        assert "did not arrive whole within 0.5 s" in error["message"], error
    # a request being served is not cut at the bound: the stream runs past it
    async with api.http.stream("GET", "/api/v1/stream?max_events=2") as stream:
        text = b"".join([chunk async for chunk in stream.aiter_bytes()])
    assert stream.status_code == 200 and text.count(b"event: sample") == 2
    r = await api.http.get("/api/v1/plugins")
    assert r.status_code == 200


async def test_a_body_that_never_arrives_whole_is_answered_408(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token holder could hold a request open for ever by sending its body a byte at a
    time, or not at all after its head: the body has a bound too."""
    monkeypatch.setattr(Gate, "body_seconds", 0.5)
    where = urlsplit(api.url)
    assert where.hostname is not None and where.port is not None
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(
            b"POST /api/v1/plugins/acme.calc/commands/add HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {api.token}\r\n".encode()
            + b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a": '
        )
        await writer.drain()
        # bounded: without the deadline the server waits for the rest for ever
        answer = await asyncio.wait_for(reader.read(), timeout=20)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    error = json.loads(body)["error"]
    assert error["code"] == "request_timeout"
    assert "did not arrive whole within 0.5 s" in error["message"], error
    r = await api.http.post("/api/v1/plugins/acme.calc/commands/add", json={"a": 1})
    assert r.status_code == 200, r.text  # the host goes on serving


async def test_a_grant_of_no_permission_says_what_a_permission_looks_like(api: Api) -> None:
    """Not the regular expression it missed: the forms a permission takes."""
    r = await api.http.post("/api/v1/plugins/acme.calc/grants", json={"permission": "netwrk"})
    assert r.status_code == 422, r.text
    message = error_of(r)["message"]
    assert "'netwrk' is not a permission: write network:HOST:PORT, read:PATH" in message
    assert "host:audit-read" in message and "^(" not in message
    assert api.host.state is not None and api.host.state.grants("acme.calc") == []
