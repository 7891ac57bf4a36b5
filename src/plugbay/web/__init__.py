"""The host over HTTP: an authenticated REST API and a live dashboard (FastAPI, uvicorn).

``plugbay run`` serves it on 127.0.0.1:8750; an application embedding a
:class:`~plugbay.Host` can serve it too, on the host's loop, once the host started::

    from plugbay.web import HttpServer, TokenFile, create_app

    tokens = TokenFile(state_dir)  # the Host's state_dir: its token, .../api-token
    token, _ = tokens.ensure()  # made on first use (mode 0600): send 'Bearer <token>'
    server = HttpServer(create_app(host, tokens=tokens), "127.0.0.1", 0)  # 0: a free port
    await server.start()  # serves at server.url
    ...
    await server.stop()  # before the host's stop

Without a token made (``ensure``, or ``plugbay token``), every request but ``/healthz``
is refused with 401.
"""

import importlib
from typing import TYPE_CHECKING, Any

from plugbay.web.token import TOKEN_FILE, TokenFile

if TYPE_CHECKING:
    from plugbay.web._app import MAX_BODY, WebApp, create_app
    from plugbay.web._server import DEFAULT_BIND, HttpServer, is_loopback, parse_bind

_LAZY = {
    "MAX_BODY": "_app",
    "WebApp": "_app",
    "create_app": "_app",
    "DEFAULT_BIND": "_server",
    "HttpServer": "_server",
    "is_loopback": "_server",
    "parse_bind": "_server",
}

__all__ = [
    "DEFAULT_BIND",
    "MAX_BODY",
    "TOKEN_FILE",
    "HttpServer",
    "TokenFile",
    "WebApp",
    "create_app",
    "is_loopback",
    "parse_bind",
]


def __getattr__(name: str) -> Any:
    # FastAPI is imported when the app is built, not when a CLI command only reads
    # host.json or the token: ``plugbay run`` and every client command start faster.
    if name in _LAZY:
        module = importlib.import_module(f"plugbay.web.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'plugbay.web' has no attribute {name!r}")
