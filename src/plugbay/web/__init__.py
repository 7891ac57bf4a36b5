"""The host over HTTP: an authenticated REST API and a live dashboard (FastAPI, uvicorn).

``plugbay run`` serves it on 127.0.0.1:8750; an application embedding a
:class:`~plugbay.host.Host` can serve it too::

    web = create_app(host, tokens=TokenFile(host.state_dir))
    server = HttpServer(web, "127.0.0.1", 8750)
    await server.start()
"""

from plugbay.web._app import MAX_BODY, WebApp, create_app
from plugbay.web._server import DEFAULT_BIND, HttpServer, is_loopback, parse_bind
from plugbay.web.token import TOKEN_FILE, TokenFile

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
