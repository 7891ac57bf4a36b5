"""integration.protocol — the spec's ProtocolPlugin, speaking plugbay-line/1 over TCP.

plugbay-line/1 is a small text protocol (PROTOCOL.md; the grammar is also in
``wire.py``): UTF-8 lines of at most 4096 octets ending in LF or CR LF, one
response line per request line::

    HELLO <name>   →  WELCOME <name> plugbay-line/1
    PING           →  PONG
    SAY <text>     →  REPLY <text>            (the ``conversation`` service answers)
                   |  ERR unavailable <reason>
    QUIT           →  BYE, and the server closes
    <other> …      →  ERR unknown-command <other>
    (too long)     →  ERR line-too-long, and the server closes
    (not UTF-8)    →  ERR bad-encoding
    MSG <text>        pushed by the server at any time (``send_message``, ``broadcast``)

As a server (``connect``, run by ``initialize``) it listens on a loopback
address only, at most ``max-clients`` clients at once, each disconnected after
``idle-timeout`` silent seconds. ``SAY`` goes to the ``conversation`` service
(ELIZA's DOCTOR when bundled), looked up at the first ``SAY``, with the
client's address as the session. As a client (the ``send`` command) it talks
the same protocol to any peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Final, Protocol

from plugbay import (
    EndpointConfig,
    IntegrationPlugin,
    Message,
    PlugbayError,
    PluginContext,
    PluginNotFound,
    PluginStateError,
    PluginTimeout,
    ServiceError,
    command,
)

from . import wire

__all__ = ["ProtocolPlugin", "ProtocolStatus"]

#: a client that lets this much output pile up unread is dropped (pushes never wait)
_MAX_BUFFERED: Final = 256 * 1024
#: after an error that ends a connection, how long its remaining input is read and dropped
_LINGER: Final = 2.0


class Conversation(Protocol):
    """The ``conversation`` service as this plugin uses it."""

    async def respond(self, text: str, session: str = "default") -> str: ...


@dataclass(frozen=True, slots=True)
class ProtocolStatus:
    listening: bool
    host: str
    port: int
    clients: int
    lines_in: int
    lines_out: int


@dataclass(slots=True)
class _Client:
    peer: str
    writer: asyncio.StreamWriter
    name: str | None = None
    since: float = field(default_factory=time.time)


class ProtocolPlugin(IntegrationPlugin):
    protocol = "line"

    def __init__(self) -> None:
        self.endpoints: list[EndpointConfig] = []
        self.host = "127.0.0.1"
        self.port = 7878
        self.max_clients = 64
        self.idle_timeout = 300.0
        self.lines_in = 0
        self.lines_out = 0
        self._server: asyncio.Server | None = None
        self._clients: dict[str, _Client] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._conversation: Conversation | None = None

    async def initialize(self, context: PluginContext) -> None:
        self.host = _loopback(str(context.config["host"]))
        self.port = int(context.config["port"])
        self.max_clients = int(context.config["max-clients"])
        self.idle_timeout = float(context.config["idle-timeout"])
        await self.connect()

    async def cleanup(self) -> None:
        await self.disconnect()

    # -- IntegrationPlugin ------------------------------------------------------------

    async def connect(self) -> None:
        """Start listening on ``host:port`` (port 0: a free one, then in ``endpoints``)."""
        if self._server is not None:
            return
        try:
            server = await asyncio.start_server(
                self._serve, self.host, self.port, limit=wire.READ_LIMIT
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc} "
                "(another program may hold the port; set the config key 'port', "
                "or 0 for any free port)",
            ) from None
        self._server = server
        port = int(server.sockets[0].getsockname()[1])
        self.endpoints = [EndpointConfig("listener", self.host, port, {"protocol": wire.VERSION})]
        self.context.logger.info("%s listening on %s:%d", wire.VERSION, self.host, port)

    async def disconnect(self) -> None:
        """Stop listening and close every client connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for client in list(self._clients.values()):
            client.writer.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(OSError):
            await server.wait_closed()
        self._clients.clear()
        self.endpoints = []
        self.context.logger.info("%s stopped listening", wire.VERSION)

    def is_connected(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def send_message(self, message: Message) -> None:
        """Push ``MSG <body>`` to every client, or only to the one whose address
        (``host:port``, as ``status``/the logs show it) is ``message.endpoint``."""
        if message.endpoint is not None and message.endpoint not in self._clients:
            raise LookupError(
                f"no client is connected from {message.endpoint}; "
                f"connected: {', '.join(sorted(self._clients)) or 'none'}"
            )
        line = "MSG " + wire.fit(message.body, wire.MAX_LINE - 4)
        for peer, client in list(self._clients.items()):
            if message.endpoint is None or message.endpoint == peer:
                self._push(client, line)

    # -- the server ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        address = writer.get_extra_info("peername")
        peer = _address(address) if address else f"unknown-{id(writer):x}"
        log = self.context.logger
        self._tasks.add(task)
        if len(self._clients) >= self.max_clients:
            log.warning("refused %s: already %d clients (max-clients)", peer, self.max_clients)
            try:
                self._push(_Client(peer, writer), "ERR too-many-clients")
                await self._close(reader, writer)
            finally:
                self._tasks.discard(task)
            return
        client = self._clients[peer] = _Client(peer, writer)
        self.context.metrics.gauge("clients", len(self._clients))
        log.debug("client %s connected", peer)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        content = await wire.read_line(reader)
                except TimeoutError:
                    await self._reply(client, "ERR idle-timeout")
                    return
                except wire.LineTooLong:
                    await self._reply(client, "ERR line-too-long")
                    await self._close(reader, writer)
                    return
                if content is None:
                    return
                self.lines_in += 1
                try:
                    line = content.decode("utf-8")
                except UnicodeDecodeError:
                    await self._reply(client, "ERR bad-encoding")
                    continue
                answer, last = await self._answer(client, wire.parse(line))
                await self._reply(client, answer)
                if last:
                    return
        except (ConnectionError, TimeoutError):
            return  # the client went away, or stopped reading what we sent
        finally:
            self._clients.pop(peer, None)
            self._tasks.discard(task)
            writer.close()
            self.context.metrics.gauge("clients", len(self._clients))
            log.debug("client %s disconnected", peer)

    async def _answer(self, client: _Client, request: wire.Request) -> tuple[str, bool]:
        """The response line to one request, and whether it ends the connection."""
        verb, argument = request.verb, request.argument
        if verb == "HELLO":
            if not argument:
                return "ERR bad-argument HELLO needs a name", False
            client.name = wire.fit(argument, 200)
            return f"WELCOME {client.name} {wire.VERSION}", False
        if verb == "PING":
            return "PONG", False
        if verb == "SAY":
            if not argument:
                return "ERR bad-argument SAY needs text", False
            return await self._say(argument, client.peer), False
        if verb == "QUIT":
            return "BYE", True
        return f"ERR unknown-command {wire.fit(request.word, 64) or '(empty)'}", False

    async def _say(self, text: str, session: str) -> str:
        """``REPLY`` with the conversation service's answer, or why there is none."""
        for _ in range(2):  # a second look if the provider we knew has gone
            known = self._conversation
            service = known
            if service is None:
                try:
                    service = self.context.services.require("conversation", "^1")
                except ServiceError as exc:
                    return f"ERR unavailable {wire.fit(exc.message, 1000)}"
                self._conversation = service
            try:
                answer = await service.respond(text=text, session=session)
            except (PluginNotFound, PluginStateError, ServiceError) as exc:
                self._conversation = None
                if known is None:
                    where = f"'{exc.plugin}' " if exc.plugin else ""
                    return f"ERR unavailable {wire.fit(where + exc.message, 1000)}"
                continue
            except PluginTimeout as exc:
                return f"ERR unavailable {wire.fit(exc.message, 1000)}"
            except PlugbayError as exc:  # the responder's own failure: this client's only
                self.context.logger.warning("conversation service failed: %s", exc)
                return f"ERR failed {exc.code}"
            except Exception as exc:  # an in-process service object raised
                self.context.logger.warning("conversation service raised %r", exc)
                return f"ERR failed {type(exc).__name__}"
            if not isinstance(answer, str):
                return "ERR failed the conversation service answered no text"
            return "REPLY " + wire.fit(answer, wire.MAX_LINE - 6)
        return "ERR unavailable the conversation service went away"

    async def _reply(self, client: _Client, line: str) -> None:
        """Answer a request; waits while the client reads, at most ``idle-timeout``."""
        client.writer.write(wire.encode(line))
        self.lines_out += 1
        async with asyncio.timeout(self.idle_timeout):
            await client.writer.drain()

    def _push(self, client: _Client, line: str) -> None:
        """Send a line without waiting; a client that does not read is dropped."""
        writer = client.writer
        if writer.is_closing():
            return
        writer.write(wire.encode(line))
        self.lines_out += 1
        if writer.transport.get_write_buffer_size() > _MAX_BUFFERED:
            self.context.logger.warning("dropped %s: it does not read what it is sent", client.peer)
            writer.transport.abort()

    async def _close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """End a connection whose client may still be sending: stop writing, read and
        drop what is still coming for a moment (so closing does not reset the connection
        before the client reads our last line), then close."""
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_LINGER):
                while await reader.read(65536):
                    pass
        writer.close()

    # -- commands ---------------------------------------------------------------------

    @command
    async def send(
        self, text: str, host: str = "127.0.0.1", port: int = 7878, timeout: float = 5.0
    ) -> str:
        """Talk to a plugbay-line/1 peer: HELLO, SAY ``text``, read the REPLY, QUIT.
        Returns the reply's text."""
        if not text.strip() or "\n" in text or "\r" in text:
            raise ValueError("text must be one non-empty line (no CR or LF)")
        if len(text.encode("utf-8")) > wire.MAX_LINE - 4:
            raise ValueError(f"text is longer than a line allows ({wire.MAX_LINE - 4} octets)")
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1 to 65535, got {port}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout:g}")
        return await wire.talk(host, port, self.id, text, timeout)

    @command
    def status(self) -> ProtocolStatus:
        """Whether it listens, where, how many clients, and lines heard and said."""
        port = self.endpoints[0].port if self.endpoints else self.port
        return ProtocolStatus(
            self.is_connected(), self.host, port, len(self._clients), self.lines_in, self.lines_out
        )

    @command
    async def broadcast(self, text: str) -> int:
        """Push ``MSG text`` to every connected client; returns how many it went to."""
        count = len(self._clients)
        await self.send_message(Message(text))
        return count


def _loopback(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"config host {host!r} is not a loopback address; this plugin only listens on "
            "a loopback IP address such as 127.0.0.1 or ::1"
        )
    return str(address)


def _address(address: tuple[object, ...]) -> str:
    host, port = str(address[0]), int(str(address[1]))
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
