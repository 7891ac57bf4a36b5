"""Serving the web app with uvicorn on the host's own event loop.

The API calls the host directly (no thread hop, no copy), so it must run on
the loop the host runs on: ``HttpServer`` runs ``uvicorn.Server`` as a task
there and leaves signals to ``plugbay run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import uvicorn

from plugbay.api.errors import PlugbayError
from plugbay.web._slow_clients import HeadDeadline

if TYPE_CHECKING:
    from plugbay.web._app import WebApp

__all__ = ["DEFAULT_BIND", "HttpServer", "is_loopback", "parse_bind"]

DEFAULT_BIND: Final = "127.0.0.1:8750"


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6; ``:PORT`` is 127.0.0.1) → (host, port)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise PlugbayError(
            f"'{text}' is not HOST:PORT",
            hint="write e.g. --http 127.0.0.1:8750 (port 0: any free port)",
        )
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the host's command owns SIGINT/SIGTERM


class HttpServer:
    """uvicorn serving ``web`` on ``host:port``, as a task on the running loop."""

    def __init__(self, web: WebApp, host: str, port: int) -> None:
        self.web = web
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind (raises OSError when the address is taken) and serve; ``port`` is then real."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY on accepted connections only
        # then, and without it a response written in two parts waits ~40 ms for an ACK
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.web.asgi,
            http=HeadDeadline,  # a request's head within a bound (no slowloris)
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        self._server = _Server(config)
        self.web.start()
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise OSError(f"the HTTP server on {self.url} stopped at once")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop the charts' sampling, then the server; the server closes its port even
        when the sampling's stop raised (raised after)."""
        try:
            await self.web.stop()
        finally:
            if self._server is not None and self._task is not None:
                self._server.should_exit = True
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._server = self._task = None
