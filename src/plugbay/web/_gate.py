"""The door every request passes: size limit, bearer token, and the security log.

A plain ASGI wrapper around the FastAPI app rather than a Starlette middleware:
it runs before routing on every request, so a refused request costs next to
nothing and never reaches a handler, and it sees the final status of every
request that changes something, which is what the security log records.

* Bodies are read here, up to ``max_body`` bytes (413 past that), and replayed.
* Every path but ``/healthz`` needs the token: ``Authorization: Bearer …``, or
  the ``plugbay_token`` cookie the dashboard gets by opening ``/?token=…`` once.
  A cookie is not accepted for a change asked from another origin (403).
* Each request that changes something (any method but GET/HEAD/OPTIONS, command
  calls aside) and each refused request is reported to ``audit`` with the caller.
* A cookie-authenticated change (POST/PUT/DELETE…) needs an ``Origin`` naming this host:
  a missing one is refused as well (bearer-token clients send no cookie, so are unaffected).
* A JSON body nested deeper than ``MAX_JSON_DEPTH`` is a 400 before any parser sees it.
* Every response carries ``X-Request-ID`` and anti-framing headers (``X-Frame-Options:
  DENY``, CSP ``frame-ancestors 'none'``); every 5xx is logged with that id (and the
  traceback, for a failure of the host), and its JSON error body carries it too.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlencode

from plugbay.api.errors import PlugbayError
from plugbay.web._errors import error_response, http_error, status_for
from plugbay.web.scopes import PREFIX, Access, allows, needed_scope, refusal_hint, route_path
from plugbay.web.token import TokenFile, fingerprint

__all__ = ["COOKIE", "MAX_JSON_DEPTH", "SECURITY_HEADERS", "Caller", "Gate"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE: Final = "plugbay_token"
OPEN_PATHS: Final = frozenset({"/healthz"})
_SAFE: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: command calls are counted by the metrics, not written to the security log one by one
_CALL: Final = re.compile(r"^/api/v1/plugins/([^/]+)/commands/([^/]+)(/batch)?$")
_PLUGIN: Final = re.compile(r"^/api/v1/plugins/([^/]+)")

Caller = dict[str, Any]
log = logging.getLogger("plugbay.web")
#: an oversized body is read and dropped up to this many times the limit before the 413
_DRAIN: Final = 16
#: JSON bodies nested deeper than this are refused (400): parameters and configs nest a
#: few levels, and a parser (or a plugin) walking 1,000 levels runs out of stack
MAX_JSON_DEPTH: Final = 64
#: on every response: no page of this host may be framed by another (clickjacking)
SECURITY_HEADERS: Final = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
)
_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: what a path keeps unquoted in the sign-in redirect's Location (RFC 3986 pchar and "/")
_PATH_SAFE: Final = "/:@!$&'()*+,;="


class Gate:
    """See the module docstring."""

    #: seconds a request's whole body may take to arrive once its head has (a client
    #: holding a body open, byte by byte, is answered 408): 1 MiB at 35 KB/s
    body_seconds: float = 30.0

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: TokenFile,
        max_body: int,
        audit: Callable[[Caller], None],
        call: Callable[[str, str, bytes, bool, Mapping[str, str]], Awaitable[ASGIApp]]
        | None = None,
        preflight: Callable[[Caller], None] | None = None,
        scoped: Callable[[str], Access | str] | None = None,
    ) -> None:
        self.app = app
        #: the scoped tokens (``web.scopes``): a token's access, or why it has none
        self.scoped = scoped
        #: writes the audit record of a change before it is made; when it raises, the
        #: change is refused (an action whose record cannot be kept is not done)
        self.preflight = preflight
        self.call = call
        self.tokens = tokens
        self.max_body = max_body
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        started = [False]
        send = _stamped(send, scope, request_id, started)
        try:
            await self._serve(scope, receive, send, headers)
        except Exception:
            # a failure of the host itself: the traceback goes to the log under the id the
            # client sees, and the client gets the one JSON error shape, not a bare 500
            log.exception(
                "%s %s failed (request %s)", scope.get("method"), scope["path"], request_id
            )
            if started[0]:
                return  # the handler answered already (FastAPI's error page); nothing to add
            error = http_error(
                "internal_error",
                "plugbay failed on this request (a bug in the host)",
                hint=f"the host's log (host.log in the state directory of 'plugbay run') has the traceback under request {request_id}; "
                "please report it",
            )
            await error_response(error, 500)(scope, receive, send)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        path = route_path(scope)
        if path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        caller = _caller(scope, path, headers)

        # -- who is asking ----------------------------------------------------------------
        refusal = self._authenticate(scope, method, headers, caller)
        if refusal is not None:
            await self._unauthenticated(scope, receive, send, headers, caller, refusal)
            return
        if caller.get("login"):
            await self._login_redirect(scope, send)
            return
        scope["state"]["access"] = Access(caller["token_id"], frozenset(caller["scopes"]))
        if not allows(frozenset(caller["scopes"]), method, path):
            await self._forbidden(scope, receive, send, caller, path)
            return

        # -- the body, bounded --------------------------------------------------------------
        body = b""
        if method not in _SAFE:
            read = await self._bounded_body(scope, receive, send, headers, caller)
            if read is None:
                return
            body = read
            receive = replay_body(body, receive)

        # -- the request, and what came of it -----------------------------------------------
        if method == "POST" and self.call is not None:
            call = _CALL.match(path)
            if call is not None:  # the hot path: straight to the host
                await self._call(call, body, headers, scope, receive, send)
                return
        if method in _SAFE:
            await self.app(scope, receive, send)
            return
        await self._change(scope, receive, send, caller)

    async def _unauthenticated(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        caller: Caller,
        refusal: tuple[int, PlugbayError, dict[str, str] | None],
    ) -> None:
        """A request without a valid token: recorded, then the login page (a browser
        opening a page) or the JSON error."""
        status, error, extra = refusal
        caller.update(status=status, result="denied", reason=error.message)
        self._audit(caller)
        if scope["method"] == "GET" and "text/html" in headers.get("accept", "") and status == 401:
            await _send_login(send, error.message)
            return
        await error_response(error, status, extra)(scope, receive, send)

    async def _forbidden(
        self, scope: Scope, receive: Receive, send: Send, caller: Caller, path: str
    ) -> None:
        """A valid token without the scope this request needs (for the route ``path``):
        403, recorded; the message names the path as the caller asked it."""
        needed = needed_scope(scope["method"], path)
        error = http_error(
            "scope_denied",
            f"the token {caller.get('token_id')} ({', '.join(caller['scopes'])}) may not "
            f"{scope['method']} {scope['path']}: that needs the scope {needed}",
            hint=f"ask the host's operator for a token with {needed} "
            "('plugbay token create --scope …')",
            needed=needed,
        )
        caller.update(status=403, result="denied", reason=error.message)
        self._audit(caller)
        await error_response(error, 403)(scope, receive, send)

    def _access(self, given: str) -> Access | str | None:
        """The access ``given`` has: all of it for the host's own token, a scoped token's,
        or why a scoped token has none (None: not a token this host knows at all)."""
        if self.tokens.matches(given):
            return Access("host", frozenset({"admin"}))
        if self.scoped is None or not given.startswith(PREFIX):
            return None
        return self.scoped(given)

    async def _bounded_body(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], caller: Caller
    ) -> bytes | None:
        """The whole body, or None when the request was answered already (too large,
        nested too deep, or the client went away)."""
        body = await self._read_body(scope, receive, send, headers, caller)
        if body is None:
            return None
        if _too_deep(body):
            await self._refuse(
                scope, receive, send, caller, 400,
                http_error(
                    "body_too_deep",
                    f"the request body nests JSON arrays or objects more than "
                    f"{MAX_JSON_DEPTH} levels deep",
                    hint="flatten the parameters; a command's parameters nest a few levels",
                    limit=MAX_JSON_DEPTH,
                ),
            )  # fmt: skip
            return None
        return body

    async def _change(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """A request that changes something: its record written first (refused when it
        cannot be), then the app, then the outcome recorded."""
        if self.preflight is not None:
            try:
                self.preflight(caller)
            except PlugbayError as exc:
                await self._refuse(scope, receive, send, caller, status_for(exc), exc)
                return
        status_box = [500]

        async def send_watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_watch)
        finally:
            status = status_box[0]
            caller.update(status=status, result="ok" if status < 400 else "failed")
            self._audit(caller)

    async def _call(
        self,
        match: re.Match[str],
        body: bytes,
        headers: Mapping[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        assert self.call is not None
        try:
            batch = match.group(3) is not None
            response = await self.call(match.group(1), match.group(2), body, batch, headers)
        except Exception:
            request_id = scope["state"]["request_id"]
            log.exception("the call route failed on %s (request %s)", scope["path"], request_id)
            response = error_response(
                http_error(
                    "internal_error",
                    "plugbay failed on this call (a bug in the host, not in the plugin)",
                    hint=f"the host's log (host.log in the state directory of 'plugbay run') has the traceback under request {request_id}; "
                    "please report it",
                ),
                500,
            )
        await response(scope, receive, send)

    def _authenticate(
        self, scope: Scope, method: str, headers: dict[str, str], caller: Caller
    ) -> tuple[int, PlugbayError, dict[str, str] | None] | None:
        challenge = {"WWW-Authenticate": 'Bearer realm="plugbay"'}
        auth = headers.get("authorization")
        if auth is not None:
            return self._bearer(auth, caller, challenge)
        query = scope.get("query_string", b"")
        if method == "GET" and b"token=" in query:
            given = (parse_qs(query.decode("latin-1")).get("token") or [""])[0]
            access = self._access(given)
            if isinstance(access, Access):
                caller.update(auth="link", token=fingerprint(given), login=True)
                _grant(caller, access)
                return None
            return (
                401,
                http_error(
                    "token_invalid",
                    access
                    or "the token in the link is not this host's token (wrong, or rotated since)",
                    hint=refusal_hint(given),
                ),
                challenge,
            )
        cookie = _cookie(headers)
        if cookie is None:
            return (
                401,
                http_error(
                    "unauthorized",
                    "this endpoint needs the host's API token",
                    hint="send 'Authorization: Bearer <token>'; 'plugbay token' shows the token "
                    "(only /healthz is open)",
                ),
                challenge,
            )
        access = self._access(cookie)
        if not isinstance(access, Access):
            return (
                401,
                http_error(
                    "token_invalid",
                    access
                    or "the dashboard's saved token is not this host's token (rotated since?)",
                    hint="open the dashboard again with the link 'plugbay token' prints",
                ),
                challenge,
            )
        caller.update(auth="cookie", token=fingerprint(cookie))
        _grant(caller, access)
        origin = headers.get("origin")
        if method not in _SAFE:
            # A browser sends Origin with every POST/PUT/DELETE; a cookie-carrying change
            # without one did not come from the dashboard's own page, so it is refused too.
            expected = {f"http://{headers.get('host', '')}", f"https://{headers.get('host', '')}"}
            if origin not in expected:
                asked = f"from another origin ({origin})" if origin else "without an Origin header"
                return (
                    403,
                    http_error(
                        "cross_origin",
                        f"a change asked {asked} with the dashboard's cookie",
                        hint="call the API with 'Authorization: Bearer <token>' instead",
                    ),
                    None,
                )
        return None

    def _bearer(
        self, auth: str, caller: Caller, challenge: dict[str, str]
    ) -> tuple[int, PlugbayError, dict[str, str] | None] | None:
        """``Authorization: Bearer …``: the host's own token, or a scoped one."""
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return (
                401,
                http_error(
                    "unauthorized",
                    "the Authorization header is not 'Bearer <token>'",
                    hint="send 'Authorization: Bearer <token>'; 'plugbay token' shows the token",
                ),
                challenge,
            )
        access = self._access(given.strip())
        if not isinstance(access, Access):
            return (
                401,
                http_error(
                    "token_invalid",
                    access or "the bearer token is not this host's token (wrong, or rotated since)",
                    hint=refusal_hint(given.strip()),
                ),
                {"WWW-Authenticate": 'Bearer realm="plugbay", error="invalid_token"'},
            )
        caller.update(auth="bearer", token=fingerprint(given.strip()))
        _grant(caller, access)
        return None

    async def _read_body(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], caller: Caller
    ) -> bytes | None:
        limit = self.max_body
        declared = headers.get("content-length")
        chunks: list[bytes] = []
        size = 0
        refused = declared is not None and declared.isdigit() and int(declared) > limit
        try:
            async with asyncio.timeout(self.body_seconds):  # one deadline for the whole body
                while not refused or size <= _DRAIN * limit:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    more = message.get("more_body", False)
                    if size > limit:
                        # read on and drop what follows (up to a bound) so the client,
                        # still sending, gets the 413 instead of a reset connection
                        refused = True
                        chunks.clear()
                    else:
                        chunks.append(chunk)
                    if not more:
                        break
        except TimeoutError:
            await self._refuse(scope, receive, send, caller, 408, self._slow_body())
            return None
        if refused:
            too_big = http_error(
                "body_too_large",
                f"the request body is larger than the {limit:,} bytes allowed",
                hint="send less (a command's parameters, a config), or start the host with a "
                "larger --http-max-body",
                limit=limit,
            )
            await self._refuse(scope, receive, send, caller, 413, too_big)
            return None
        return b"".join(chunks)

    def _slow_body(self) -> PlugbayError:
        return http_error(
            "request_timeout",
            f"the request body did not arrive whole within {self.body_seconds:g} s",
            hint="send the whole body at once (a command's parameters, a config are small)",
        )

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        status: int,
        error: PlugbayError,
    ) -> None:
        caller.update(status=status, result="denied", reason=error.message)
        self._audit(caller)
        await error_response(error, status, {"Connection": "close"})(scope, receive, send)

    async def _login_redirect(self, scope: Scope, send: Send) -> None:
        """``/?token=…`` keeps the token in a cookie and drops it from the address bar."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = query.pop("token", [""])[0]
        rest = urlencode(query, doseq=True)
        # a path of this host only: "//other.example" or "/\\other.example" would send the
        # browser to another site (with the cookie just set), and the path is quoted back
        # (a decoded "/€" is not a header's latin-1)
        path = "/" + str(scope["path"]).lstrip("/\\")
        location = quote(path, safe=_PATH_SAFE) + (f"?{rest}" if rest else "")
        cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def _audit(self, caller: Caller) -> None:
        caller["time"] = time.time()
        self.audit(caller)


def _grant(caller: Caller, access: Access) -> None:
    """What the caller may do, as the security log records it."""
    caller.update(token_id=access.token_id, scopes=sorted(access.scopes))


def _stamped(send: Send, scope: Scope, request_id: str, started: list[bool]) -> Send:
    """``send`` with the request id and anti-framing headers on the response; a 5xx is
    logged, and its JSON error body gets ``request_id`` (it is held until complete)."""
    held: list[Message] = []

    async def stamped(message: Message) -> None:
        if message["type"] == "http.response.start":
            started[0] = True
            names = {k.lower() for k, _ in message.get("headers", ())}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
            message["headers"] = [
                *message.get("headers", ()), *extra, (b"x-request-id", request_id.encode())
            ]  # fmt: skip
            if message["status"] >= 500:
                log.error(
                    "%s %s answered %d (request %s)",
                    scope.get("method"), scope["path"], message["status"], request_id,
                )  # fmt: skip
                held.append(message)
                return
        elif held and message["type"] == "http.response.body":
            held.append(message)
            if message.get("more_body", False):
                return
            start, *chunks = held
            held.clear()
            body = _with_request_id(b"".join(c.get("body", b"") for c in chunks), request_id)
            start["headers"] = [
                (k, str(len(body)).encode() if k.lower() == b"content-length" else v)
                for k, v in start["headers"]
            ]
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return stamped


def _with_request_id(body: bytes, request_id: str) -> bytes:
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data["error"]["request_id"] = request_id
        data["request_id"] = request_id
        return json.dumps(data).encode()
    return body


def _too_deep(body: bytes) -> bool:
    """Whether ``body`` nests ``[``/``{`` deeper than MAX_JSON_DEPTH (outside strings).
    Counting brackets first keeps the common body from being scanned byte by byte."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _caller(scope: Scope, path: str, headers: dict[str, str]) -> Caller:
    """Who asks, as the security log records it (the plugin, when the route ``path``
    names one; the path recorded is the one asked, with any mount prefix)."""
    caller: Caller = {
        "method": scope["method"],
        "path": scope["path"],
        "address": _address(scope),
        "user_agent": headers.get("user-agent", ""),
    }
    match = _PLUGIN.match(path)
    if match:
        caller["plugin"] = match.group(1)
    return caller


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


def _cookie(headers: dict[str, str]) -> str | None:
    raw = headers.get("cookie")
    if not raw or COOKIE not in raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is the same as none
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def replay_body(body: bytes, receive: Receive, then: Message | None = None) -> Receive:
    """A ``receive`` that gives the app ``body`` (already read) as one message, then
    ``then`` (a message read past the body), then what ``receive`` gives (the
    disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return then
        return await receive()  # after the body: wait for the disconnect

    return replay


async def _send_login(send: Send, reason: str) -> None:
    page = _LOGIN.replace("{reason}", html.escape(reason)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(page)).encode()),
                (b"www-authenticate", b'Bearer realm="plugbay"'),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": page})


_LOGIN: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>plugbay — sign in</title>
<style>body{font:15px system-ui,sans-serif;max-width:34em;margin:4em auto;color:#222}
input{font:inherit;width:100%;padding:.4em;box-sizing:border-box}button{font:inherit;margin-top:.6em}
code{background:#eee;padding:0 .2em}</style></head>
<body><h1>plugbay</h1><p>{reason}.</p>
<p>Paste the host's API token (<code>plugbay token</code> on the host's machine prints it, with a
link that signs you in).</p>
<form method="get" action="/"><input name="token" type="password" autocomplete="off"
 placeholder="API token" autofocus><button type="submit">Open the dashboard</button></form>
</body></html>
"""
