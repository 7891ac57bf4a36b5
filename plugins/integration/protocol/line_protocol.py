"""integration.protocol — the spec's ProtocolPlugin, speaking plugbay-line/1 (PROTOCOL.md).

As a server (``connect``) it listens on 127.0.0.1 and answers HELLO, PING,
SAY (through the ``conversation`` service) and QUIT; ``send_message`` pushes
``MSG`` lines to clients. As a client (the ``send`` command) it talks the
same protocol to a peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from dataclasses import dataclass
from typing import Protocol

from plugbay import (
    EndpointConfig,
    IntegrationPlugin,
    Message,
    PluginContext,
    ServiceError,
    command,
)

MAX_LINE = 4096
VERSION = "plugbay-line/1"


class Conversation(Protocol):
    async def respond(self, text: str, session: str = "default") -> str: ...


@dataclass(frozen=True, slots=True)
class ProtocolStatus:
    listening: bool
    host: str
    port: int
    clients: int
    lines_in: int
    lines_out: int


class ProtocolPlugin(IntegrationPlugin):
    protocol = "line"

    def __init__(self) -> None:
        self.endpoints: list[EndpointConfig] = []
        self._server: asyncio.Server | None = None
        self._clients: dict[str, asyncio.StreamWriter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.lines_in = 0
        self.lines_out = 0
        self.host = "127.0.0.1"
        self.port = 7878
        self.max_clients = 64
        self.idle_timeout = 300.0
        self._conversation: Conversation | None = None

    async def initialize(self, context: PluginContext) -> None:
        self.host = str(context.config["host"])
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        if not loopback:
            raise ValueError(
                f"config host {self.host!r} is not a loopback address; this plugin only "
                "listens on 127.0.0.1 (or another loopback address)"
            )
        self.port = int(context.config["port"])
        self.max_clients = int(context.config["max-clients"])
        self.idle_timeout = float(context.config["idle-timeout"])
        await self.connect()

    async def cleanup(self) -> None:
        await self.disconnect()

    # -- IntegrationPlugin ------------------------------------------------------------

    async def connect(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_LINE + 2
        )
        port = self._server.sockets[0].getsockname()[1]
        self.endpoints = [EndpointConfig("listener", self.host, port)]
        self.context.logger.info("plugbay-line/1 listening on %s:%d", self.host, port)

    async def disconnect(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._clients.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await server.wait_closed()
        self._clients.clear()

    def is_connected(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def send_message(self, message: Message) -> None:
        for peer, writer in list(self._clients.items()):
            if message.endpoint is None or message.endpoint == peer:
                await self._write(writer, f"MSG {message.body}")

    # -- the server -------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        address = writer.get_extra_info("peername")
        peer = f"{address[0]}:{address[1]}" if address else "unknown"
        try:
            if len(self._clients) >= self.max_clients:
                await self._write(writer, "ERR too-many-clients")
                return
            self._clients[peer] = writer
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readline(), self.idle_timeout)
                except TimeoutError:
                    await self._write(writer, "ERR idle-timeout")
                    return
                except (asyncio.LimitOverrunError, ValueError):
                    await self._write(writer, "ERR line-too-long")
                    return
                if not raw:
                    return
                if len(raw) > MAX_LINE + 2:
                    await self._write(writer, "ERR line-too-long")
                    return
                self.lines_in += 1
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    await self._write(writer, "ERR bad-encoding")
                    continue
                reply, done = await self._answer(line, peer)
                await self._write(writer, reply)
                if done:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._clients.pop(peer, None)
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, line: str, peer: str) -> tuple[str, bool]:
        word, _, rest = line.strip().partition(" ")
        verb = word.upper()
        if verb == "HELLO":
            return f"WELCOME {rest.strip() or peer} {VERSION}", False
        if verb == "PING":
            return "PONG", False
        if verb == "QUIT":
            return "BYE", True
        if verb == "SAY":
            try:
                if self._conversation is None:
                    conversation: Conversation = self.context.services.require("conversation", "^1")
                    self._conversation = conversation
                text = await self._conversation.respond(text=rest, session=peer)
            except ServiceError as exc:
                return f"ERR unavailable {exc.message}", False
            except Exception as exc:  # the responder's failure is reported to this client only
                return f"ERR failed {type(exc).__name__}", False
            return f"REPLY {' '.join(text.split())}", False
        return f"ERR unknown-command {word[:40] or '(empty)'}", False

    async def _write(self, writer: asyncio.StreamWriter, line: str) -> None:
        writer.write(line.encode("utf-8") + b"\n")
        self.lines_out += 1
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    # -- commands ---------------------------------------------------------------------

    @command
    async def send(
        self, text: str, host: str = "127.0.0.1", port: int = 7878, timeout: float = 5.0
    ) -> str:
        """Talk to a plugbay-line/1 peer: HELLO, SAY text, read the REPLY, QUIT."""
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    lines: list[str] = []
                    for out in (f"HELLO {self.id}", f"SAY {text}", "QUIT"):
                        writer.write(out.encode() + b"\n")
                        await writer.drain()
                        lines.append((await reader.readline()).decode("utf-8", "replace").strip())
                finally:
                    writer.close()
        except TimeoutError:
            raise TimeoutError(f"peer {host}:{port} did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise ConnectionError(
                f"cannot reach peer {host}:{port}: {exc.strerror or exc}"
            ) from None
        reply = lines[1]
        if not reply.startswith("REPLY "):
            raise ConnectionError(f"peer {host}:{port} answered {reply!r} to SAY")
        return reply[len("REPLY ") :]

    @command
    def status(self) -> ProtocolStatus:
        """Whether it listens, where, and how much it has said and heard."""
        port = self.endpoints[0].port if self.endpoints else self.port
        return ProtocolStatus(
            self.is_connected(), self.host, port, len(self._clients), self.lines_in, self.lines_out
        )

    @command
    async def broadcast(self, text: str) -> int:
        """Send MSG text to every connected client; returns how many."""
        count = len(self._clients)
        await self.send_message(Message(text))
        return count
