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
the same protocol to a peer its manifest declares under ``[permissions] network``
(``127.0.0.1:*``: any port of this machine's 127.0.0.1), and refuses any other
(``peers.py``): trusted inline, no sandbox does it.

A hot reload keeps the port: the new version takes the old one's listener over
(``connect``), new connections reach it at once, and the old version's clients
are disconnected when it is retired.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import sys
import time
import types
from collections.abc import Awaitable, Callable
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

from . import peers, wire

__all__ = ["ProtocolPlugin", "ProtocolStatus"]

#: a client that lets this much output pile up unread is dropped (pushes never wait)
_MAX_BUFFERED: Final = 256 * 1024
#: where the listeners live across reloads (see ``_listeners``)
_REGISTRY: Final = "_plugbay_integration_protocol_listeners"
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


class _Listener(Protocol):
    """A listening socket shared by the loaded versions of this plugin (see ``_listeners``).

    A Protocol, not a class: each version has its own module namespace, so the
    object one version made is only known to the next by its shape.
    """

    server: asyncio.Server
    loop: asyncio.AbstractEventLoop
    #: the attached versions' connection handlers; the last one gets new connections
    handlers: list[Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]]


@dataclass(slots=True)
class _SharedListener:
    server: asyncio.Server
    loop: asyncio.AbstractEventLoop
    handlers: list[Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]]


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
        self._listener: _Listener | None = None
        self._key: tuple[str, str, int] = ("", self.host, self.port)
        self._clients: dict[str, _Client] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._conversation: Conversation | None = None
        self._network: tuple[str, ...] = ()  # where ``send`` may connect (the manifest's)
        #: what ``send``'s deadline is read on (a test may give a clock of its own)
        self.clock: Callable[[], float] = time.monotonic

    async def initialize(self, context: PluginContext) -> None:
        self._network = peers.declared()
        self.host = _loopback(str(context.config["host"]))
        self.port = int(context.config["port"])
        self.max_clients = int(context.config["max-clients"])
        self.idle_timeout = float(context.config["idle-timeout"])
        await self.connect()

    async def cleanup(self) -> None:
        await self.disconnect()

    # -- IntegrationPlugin ------------------------------------------------------------

    async def connect(self) -> None:
        """Start listening on ``host:port`` (port 0: a free one, then in ``endpoints``).

        If an earlier version of this plugin, in this host and process, is listening
        there (a hot reload loads the new version beside the old), this one takes
        its listener over instead of binding again: new connections come here at
        once, and the old version keeps its clients until it is retired.
        """
        if self._listener is not None:
            return
        self._key = (str(self.context.environment.data_dir), self.host, self.port)
        listener = _listening(self._key)
        if listener is None:
            listener = await _listen(self._key)
        else:
            self.context.logger.info(
                "taking over the listener on %s:%d from the version before",
                self.host,
                _port_of(listener),
            )
        listener.handlers.append(self._serve)
        self._listener = listener
        port = _port_of(listener)
        self.endpoints = [EndpointConfig("listener", self.host, port, {"protocol": wire.VERSION})]
        self.context.logger.info("%s listening on %s:%d", wire.VERSION, self.host, port)

    async def disconnect(self) -> None:
        """Stop listening and close every client connection (this version's)."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        with contextlib.suppress(ValueError):
            listener.handlers.remove(self._serve)
        closing = not listener.handlers
        if closing:  # no other version of this plugin needs it
            _listeners().pop(self._key, None)
            listener.server.close()
        for client in list(self._clients.values()):
            client.writer.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if closing:
            with contextlib.suppress(OSError):
                await listener.server.wait_closed()
        self._clients.clear()
        self.endpoints = []
        self.context.logger.info(
            "%s stopped listening" if closing else "%s: left the listener to the version after",
            wire.VERSION,
        )

    def is_connected(self) -> bool:
        listener = self._listener
        return listener is not None and listener.server.is_serving()

    async def send_message(self, message: Message) -> None:
        """Push ``MSG <body>`` to every client, or only to the one whose address is
        ``message.endpoint`` (``host:port``, as the logs and its conversation session say)."""
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
        """One client connection, from accept to close."""
        task = asyncio.current_task()
        assert task is not None
        address = writer.get_extra_info("peername")
        peer = _address(address) if address else f"unknown-{id(writer):x}"
        client = _Client(peer, writer)
        self._tasks.add(task)
        try:
            if len(self._clients) >= self.max_clients:
                self.context.logger.warning(
                    "refused %s: already %d clients (max-clients)", peer, self.max_clients
                )
                self._push(client, "ERR too-many-clients")
                await self._close(reader, writer)
                return
            self._clients[peer] = client
            self.context.metrics.gauge("clients", len(self._clients))
            self.context.logger.debug("client %s connected", peer)
            try:
                ended_early = await self._converse(client, reader)
            except (ConnectionError, TimeoutError):
                ended_early = False  # it went away, or stopped reading what we sent
            finally:
                self._clients.pop(peer, None)
                self.context.metrics.gauge("clients", len(self._clients))
                self.context.logger.debug("client %s disconnected", peer)
            if ended_early:
                await self._close(reader, writer)
        except asyncio.CancelledError:
            # disconnect() cancels connections. Ending normally keeps asyncio's own
            # callback for start_server (Python 3.11) from logging the cancellation.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _converse(self, client: _Client, reader: asyncio.StreamReader) -> bool:
        """Answer requests until the client leaves; True if we ended it while it may
        still be sending (so its remaining input must be drained before closing)."""
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    content = await wire.read_line(reader)
            except TimeoutError:
                await self._reply(client, "ERR idle-timeout")
                return False
            except wire.LineTooLong:
                await self._reply(client, "ERR line-too-long")
                return True
            if content is None:
                return False
            self.lines_in += 1
            try:
                line = content.decode("utf-8")
            except UnicodeDecodeError:
                await self._reply(client, "ERR bad-encoding")
                continue
            answer, last = await self._answer(client, wire.parse(line))
            await self._reply(client, answer)
            if last:
                return False

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
                return "ERR failed not-text"
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
        Returns the reply's text. A peer its manifest does not declare under
        ``[permissions] network`` is refused (PermissionDenied). ``timeout`` bounds the
        whole call, looking ``host`` up included."""
        if not text.strip() or "\n" in text or "\r" in text:
            raise ValueError("text must be one non-empty line (no CR or LF)")
        if len(text.encode("utf-8")) > wire.MAX_LINE - 4:
            raise ValueError(f"text is longer than a line allows ({wire.MAX_LINE - 4} octets)")
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1 to 65535, got {port}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout:g}")
        # one deadline for the whole call: looking a host name up spends part of it, and
        # the conversation is not started when nothing is left
        deadline = wire.Deadline(timeout, self.clock)
        address = await peers.granted_address(
            self.id, host, port, self._network, timeout, left=deadline.left(host, port)
        )
        return await wire.talk(address, port, self.id, text, deadline)

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


def _listeners() -> dict[tuple[str, str, int], _Listener]:
    """Listeners by (data directory, host, configured port), shared by every version of
    this plugin loaded in this process: kept in ``sys.modules`` because a reload gives
    the new version a fresh module namespace of its own."""
    module = sys.modules.get(_REGISTRY)
    if module is None:
        module = types.ModuleType(_REGISTRY, "integration.protocol: listeners across reloads")
        module.listeners = {}  # type: ignore[attr-defined]
        sys.modules[_REGISTRY] = module
    found: dict[tuple[str, str, int], _Listener] = module.listeners
    return found


def _listening(key: tuple[str, str, int]) -> _Listener | None:
    """The live listener an earlier version of this plugin left for ``key``, if any."""
    listener = _listeners().get(key)
    if listener is None:
        return None
    alive = (
        listener.loop is asyncio.get_running_loop()
        and listener.server.is_serving()
        and bool(listener.handlers)
    )
    if not alive:
        _listeners().pop(key, None)
        return None
    return listener


async def _listen(key: tuple[str, str, int]) -> _Listener:
    _, host, port = key
    handlers: list[Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if handlers:  # the newest attached version serves it
            await handlers[-1](reader, writer)
        else:
            writer.close()

    try:
        server = await asyncio.start_server(accept, host, port, limit=wire.READ_LIMIT)
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(another program may hold the port; set the config key 'port', "
            "or 0 for any free port)",
        ) from None
    listener = _SharedListener(server, asyncio.get_running_loop(), handlers)
    _listeners()[key] = listener
    return listener


def _port_of(listener: _Listener) -> int:
    sockets = listener.server.sockets
    if not sockets:  # e.g. in a network namespace whose loopback is down: nothing bound
        raise OSError(
            "the listener has no socket: nothing could be bound (a sandboxed worker cannot "
            "listen; the operator must trust this plugin inline in plugbay.toml)"
        )
    return int(sockets[0].getsockname()[1])


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
