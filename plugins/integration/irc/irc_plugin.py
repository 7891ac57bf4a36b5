"""integration.irc: a chat peer on a real IRC server, answering through ``conversation``.

It connects to ``server:port``, registers as ``nick`` and joins ``channel``. A line on
the channel addressed to it (``plugbay: how are you?``), or a private message, goes to
the ``conversation`` service (ELIZA's DOCTOR when bundled) with the sender's nick as
the session, and the answer comes back on the channel (``alice: Why do you ask?``).

What it says goes through one bounded queue:

* **backpressure**: a sender (``say``, ``send_message``, an answer) waits while the
  queue holds ``queue-size`` lines, at most ``send-timeout`` seconds, then is refused;
* **rate**: a token bucket lets ``burst`` lines go at once, then ``rate`` a second,
  so the server never sees a flood (ngIRCd and others throttle or drop flooders);
* a line leaves the queue only once it was written to the server: a connection
  that breaks keeps it, and it goes after the reconnection.

**Reconnection**: when the server goes away (restart, network), it tries again after
0.05 s, doubling to ``reconnect-max``, and joins the channel again.

**Hot reload**: the new version connects beside the old one (as ``nick_`` while the
old holds the nick, taking the nick back when the old one quits: its QUIT seen in the
channel, or, when it quit before the new one joined, nobody on ``ISON``, asked once
joined and again at each of the server's PINGs, so a holder outside the channel is
noticed too). ``export_state``
stops the old version's sending and hands its unsent lines over; the new one sends
them first. If no new version takes them within 30 s (a failed swap), the old one
sends them itself. A host stop keeps them for the next start the same way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

from plugbay import (
    EndpointConfig,
    IntegrationPlugin,
    Message,
    PlugbayError,
    PluginContext,
    ServiceError,
    command,
)

from .irc_lines import MAX_LINE, Line, Pacer, check_target, parse, privmsg, read_line

__all__ = ["IrcPlugin", "IrcStatus"]

#: seconds the exported lines wait for a new version before this one sends them itself
_THAW: Final = 30.0
_FIRST_DELAY: Final = 0.05


class Conversation(Protocol):
    async def respond(self, text: str, session: str = "default") -> str: ...


@dataclass(frozen=True, slots=True)
class IrcStatus:
    connected: bool
    nick: str
    channel: str
    queued: int
    sent: int
    received: int
    reconnects: int
    #: why it is not joined when it knows ("" when joined or trying)
    problem: str


class QueueFull(PlugbayError):
    """The send queue stayed full for ``send-timeout`` seconds: the line was not queued."""

    code = "irc_queue_full"


class NoServer(PlugbayError):
    """A line was given to say while no server is configured: nothing would send it."""

    code = "irc_no_server"


class IrcPlugin(IntegrationPlugin):
    protocol = "irc"

    def __init__(self) -> None:
        self.endpoints: list[EndpointConfig] = []
        self.server, self.port = "", 6667
        self.wanted_nick = self.nick = "plugbay"
        self.channel = "#plugbay"
        self.queue_size, self.send_timeout = 256, 10.0
        self.reconnect_max = 30.0
        self.sent = self.received = self.reconnects = 0
        self._queue: collections.deque[tuple[str, str]] = collections.deque()
        self._pacer = Pacer(2.0, 5)
        self._cond: asyncio.Condition | None = None
        self._joined = False
        self._registered = False
        self._suffix = ""  # the _s after the nick while another holds it
        self._nick_room = 0  # the longest nick the server took or may take
        self._frozen = False
        self._thaw: asyncio.TimerHandle | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._answers: set[asyncio.Task[None]] = set()
        self._conversation: Conversation | None = None
        self._problem = ""  # why it cannot connect, when it knows (a sandbox's refusal)

    async def initialize(self, context: PluginContext) -> None:
        config = context.config
        self.server, self.port = str(config["server"]), int(config["port"])
        self.wanted_nick = self.nick = str(config["nick"])
        self.channel = str(config["channel"])
        self.queue_size = int(config["queue-size"])
        self.send_timeout = float(config["send-timeout"])
        self.reconnect_max = float(config["reconnect-max"])
        self._pacer = Pacer(float(config["rate"]), int(config["burst"]))
        self._cond = asyncio.Condition()
        await self.connect()

    async def cleanup(self) -> None:
        await self.disconnect()

    async def on_config_change(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """The pace and the queue's bounds change in place; a new server, port, nick or
        channel needs a new connection: it quits and connects again with them, and the
        lines queued meanwhile go out once it has joined."""
        self.queue_size, self.send_timeout = int(new["queue-size"]), float(new["send-timeout"])
        self.reconnect_max = float(new["reconnect-max"])
        self._pacer = Pacer(float(new["rate"]), int(new["burst"]))
        moved = [k for k in ("server", "port", "nick", "channel") if old[k] != new[k]]
        if moved:
            await self.disconnect()  # (cancels a pending thaw: the serving version sends)
            self._frozen = False
            self.server, self.port = str(new["server"]), int(new["port"])
            self.wanted_nick = self.nick = str(new["nick"])
            self.channel = str(new["channel"])
            self._problem = ""
            self.context.logger.info("%s changed: connecting again", ", ".join(moved))
            await self.connect()

    # -- IntegrationPlugin ----------------------------------------------------------------

    async def connect(self) -> None:
        """Start the connection loop (it connects, registers, joins, and reconnects)."""
        if not self.server:
            self.context.logger.info("no IRC server configured (config key 'server'): idle")
            return
        if self._task is None or self._task.done():
            self._closing = False
            self._named_in_a_sandbox()
            self._task = asyncio.create_task(self._run())
            self.endpoints = [EndpointConfig("server", self.server, self.port, {"protocol": "irc"})]

    def _named_in_a_sandbox(self) -> None:
        """Sandboxed, a server given by name is not reached: a sandbox's network grants
        are IP addresses, and a failed name lookup there says nothing of grants. Said
        at once, in its log and status's problem, with what to write instead; whatever
        the backend (a worker here or on a Ray node), and only when sandboxed (a trusted
        plugin's worker looks the name up as inline)."""
        if not self.context.environment.sandboxed:
            return
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(self.server)
            return
        self._problem = (
            f"the server {self.server!r} is a host name, and {self.id} runs sandboxed, "
            "where network grants are IP addresses: set the server's address instead "
            f"('plugbay config {self.id} server=ADDRESS'; 'getent hosts {self.server}' "
            f'on the host gives it), add "ADDRESS:{self.port}" to [permissions] network in '
            f"its plugin.toml and run 'plugbay grant {self.id} network:ADDRESS:{self.port}'; "
            f'or run it trusted: add "{self.id}" to inline under [policy] in plugbay.toml '
            "and restart the host"
        )
        self.context.logger.error("%s", self._problem)

    async def disconnect(self) -> None:
        """Say QUIT, close the connection, stop reconnecting."""
        self._closing = True
        if self._thaw is not None:
            self._thaw.cancel()
        writer = self._writer
        if writer is not None and not writer.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(b"QUIT :plugbay says goodbye\r\n")
                async with asyncio.timeout(1):
                    await writer.drain()
        tasks = [t for t in (self._task, *self._answers) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self.endpoints = []

    def is_connected(self) -> bool:
        return self._joined

    async def send_message(self, message: Message) -> None:
        """Queue ``message.body`` for the channel (or ``message.endpoint``, a nick or
        another channel); waits while the queue is full, at most ``send-timeout``."""
        await self._enqueue(message.endpoint or self.channel, message.body)

    # -- commands ---------------------------------------------------------------------

    @command
    async def say(self, text: str, target: str = "") -> int:
        """Say ``text`` on the channel (or to ``target``); returns the lines queued after it.
        Refused at once while no server is configured: nothing would send it."""
        if not text.strip():
            raise ValueError("text must not be empty")
        await self._enqueue(target or self.channel, text)
        return len(self._queue)

    @command
    def status(self) -> IrcStatus:
        """Joined or not, as which nick, and lines queued, sent, heard, reconnections."""
        return IrcStatus(
            self._joined, self.nick, self.channel, len(self._queue), self.sent, self.received,
            self.reconnects, self._problem,
        )  # fmt: skip

    # -- state across a reload or a restart -------------------------------------------

    async def export_state(self) -> dict[str, Any]:
        """Stop sending and hand the unsent lines over (see the module docstring)."""
        cond = self._cond
        if cond is None:
            return {"queue": []}
        async with cond:
            self._frozen = True  # the pump holds cond while it writes: nothing half-sent
            lines = [list(item) for item in self._queue]
        self._thaw = asyncio.get_running_loop().call_later(_THAW, self._unfreeze)
        return {"queue": lines}

    async def import_state(self, state: dict[str, Any]) -> None:
        """Send the lines a version before did not, first."""
        lines = [(str(t), str(x)) for t, x in state.get("queue", [])]
        cond = self._cond
        if cond is None:
            return
        async with cond:
            self._queue.extendleft(reversed(lines))
            cond.notify_all()

    def _unfreeze(self) -> None:
        cond = self._cond
        if cond is None or self._closing:
            return

        async def thaw() -> None:
            async with cond:
                self._frozen = False
                cond.notify_all()

        task = asyncio.ensure_future(thaw())
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    # -- the queue ----------------------------------------------------------------------

    async def _enqueue(self, target: str, text: str) -> None:
        check_target(target)  # a CR LF in it would send a command of the caller's choosing
        if not self.server:
            raise NoServer(
                "no IRC server is configured (config key 'server'): the line was not queued",
                plugin=self.id,
                hint=f"set one: 'plugbay config {self.id} server=HOST' (and port=PORT "
                "when it is not 6667), then say it again",
            )
        cond = self._cond
        assert cond is not None, "not initialized"
        async with cond:
            try:
                async with asyncio.timeout(self.send_timeout):
                    await cond.wait_for(lambda: len(self._queue) < self.queue_size)
            except TimeoutError:
                raise QueueFull(
                    f"the send queue stayed full ({self.queue_size} lines) for "
                    f"{self.send_timeout:g} s",
                    plugin=self.id,
                    hint=self._why_full(),
                ) from None
            self._queue.append((target, text))
            cond.notify_all()

    def _why_full(self) -> str:
        """What holds the queue full, in the words of its cause."""
        if self._frozen:
            return "it is handing its lines to a new version (a reload): retry in a moment"
        if not self._joined:
            why = self._problem or (
                f"it is not joined to {self.channel} on {self.server}:{self.port} yet "
                f"(reconnecting; '{self.id}' logs say why)"
            )
            return f"{why}; lines wait for that: raise queue-size, or retry once it has joined"
        return (
            f"the server takes them at {self._pacer.rate:g} lines a second after a burst of "
            f"{self._pacer.burst}: raise rate or queue-size, or retry later"
        )

    async def _pump(self, writer: asyncio.StreamWriter) -> None:
        """Send queued lines at the pace, each leaving the queue once written."""
        cond = self._cond
        assert cond is not None
        while True:
            async with cond:
                await cond.wait_for(lambda: bool(self._queue) and self._joined and not self._frozen)
                delay = self._pacer.wait()
                if delay == 0:
                    target, text = self._queue[0]
                    writer.write((privmsg(target, text) + "\r\n").encode())
                    await writer.drain()
                    self._queue.popleft()
                    self.sent += 1
                    cond.notify_all()
                    continue
            await asyncio.sleep(delay)

    # -- the connection -------------------------------------------------------------------

    async def _run(self) -> None:
        delay = _FIRST_DELAY
        while not self._closing:
            try:
                reader, writer = await asyncio.open_connection(self.server, self.port)
            except PermissionError:  # only a sandbox refuses a connect with EPERM
                self._refused_by_sandbox()
            except OSError as exc:
                self.context.logger.info("cannot reach %s:%d (%s)", self.server, self.port, exc)
            else:
                self._writer = writer
                joined = await self._session(reader, writer)
                if joined:
                    delay = _FIRST_DELAY
            if self._closing:
                return
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    def _refused_by_sandbox(self) -> None:
        """Say once per server which grant is missing and how to give it (the sandbox's
        own record names no destination: it refuses the socket before the connect)."""
        where = f"{self.server}:{self.port}"
        if self._problem:
            return
        self._problem = (
            f"the sandbox refused connecting to {where}: {self.id} holds no grant "
            f"network:{where} (its manifest asks for network:127.0.0.1:6667, the default "
            "server; a sandbox allows a connection by address and port). Run it trusted: add "
            f'"{self.id}" to inline under [policy] in plugbay.toml and restart the host; '
            f'or keep it sandboxed: add "{where}" (an IP address) to [permissions] network '
            f"in its plugin.toml and run 'plugbay grant {self.id} network:{where}'"
        )
        self.context.logger.error("%s", self._problem)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One connection, until it ends; whether it got as far as joining the channel."""
        pump: asyncio.Task[None] | None = None
        joined_once = False
        try:
            self.nick = self.wanted_nick = str(self.context.config["nick"])
            self._registered, self._suffix, self._nick_room = False, "", MAX_LINE  # unknown
            writer.write(f"NICK {self.nick}\r\nUSER plugbay 0 * :plugbay chat peer\r\n".encode())
            await writer.drain()
            pump = asyncio.create_task(self._pump(writer))
            undecoded = 0
            while raw := await read_line(reader):
                self.received += 1
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    undecoded += 1
                    self._skip_undecodable(raw, first=undecoded == 1)
                    continue
                joined_once = await self._on_line(parse(text), writer) or joined_once
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.context.logger.info("connection to %s:%d ended: %s", self.server, self.port, exc)
        finally:
            await self._set_joined(False)
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                    await pump
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
            self._writer = None
        if not self._closing:
            self.context.logger.warning("lost %s:%d; reconnecting", self.server, self.port)
        return joined_once

    def _skip_undecodable(self, raw: bytes, *, first: bool) -> None:
        """A line that is not UTF-8 is skipped, not answered: with its bytes replaced,
        its text (a command to this bot, say) would be one its sender never wrote."""
        if not first:
            return  # said once a connection: a sender in another charset would flood the log
        line = parse(raw.decode("utf-8", "replace"))
        self.context.logger.warning(
            "skipped a line from %s:%d that is not UTF-8 (%s from %s): it is not answered, "
            "nor are later ones on this connection (said once); IRC text is read as UTF-8 "
            "only, so its sender's client must send UTF-8",
            self.server, self.port, line.command or "?", line.nick or "the server",
        )  # fmt: skip

    def _nick_taken(self, writer: asyncio.StreamWriter) -> None:
        """433: while registering, the version before still holds the nick: take it with
        a ``_``. Once registered, it answers a try to take the nick back that came too
        early: the holder's QUIT will say when it is free."""
        if not self._registered:
            self._suffix += "_"
            self._ask_nick(writer)

    def _nick_refused(self, line: Line, writer: asyncio.StreamWriter) -> None:
        """432: while registering, the server refuses the nick (longer than it takes, or
        a character it does not): ask again one character shorter, the configured nick
        itself when it was that one, else only the ``_`` variant."""
        if self._registered:
            return  # a try to take the nick back: the one we have stays
        words = " ".join(line.params[2:] or line.params[-1:])
        if not self._suffix:
            self.wanted_nick = self.wanted_nick[:-1]
            self.context.logger.warning(
                "%s:%d refuses the nick %r (%s); trying %r: set a nick it takes "
                "('plugbay config %s nick=...')",
                self.server, self.port, self.nick, words, self.wanted_nick, self.id,
            )  # fmt: skip
        self._nick_room = min(self._nick_room, len(self.nick) - 1)
        if not self.wanted_nick or self._nick_room <= len(self._suffix):
            message = (
                f"{self.server}:{self.port} refuses every nick tried, the last {self.nick!r} "
                f"({words}); set a nick it takes ('plugbay config {self.id} nick=...')"
            )
            self.context.logger.error("%s", message)
            raise ValueError(message)
        self._ask_nick(writer)

    def _ask_nick(self, writer: asyncio.StreamWriter) -> None:
        self.nick = self.wanted_nick[: self._nick_room - len(self._suffix)] + self._suffix
        writer.write(f"NICK {self.nick}\r\n".encode())

    async def _on_joined(self, writer: asyncio.StreamWriter) -> None:
        await self._set_joined(True)
        self._problem = ""
        self.context.logger.info("joined %s on %s as %s", self.channel, self.server, self.nick)
        if self.nick != self.wanted_nick:  # the holder may have quit before we joined
            writer.write(f"ISON {self.wanted_nick}\r\n".encode())  # (its QUIT unseen)

    async def _on_line(self, line: Line, writer: asyncio.StreamWriter) -> bool:
        """React to one server line; True when it was our JOIN of the channel."""
        cmd, params = line.command, line.params
        if cmd == "PING":
            writer.write(f"PONG :{params[-1] if params else ''}\r\n".encode())
            if self._joined and self.nick != self.wanted_nick:  # a holder we cannot see
                writer.write(f"ISON {self.wanted_nick}\r\n".encode())  # may have quit
        elif cmd == "001" and params:
            self.nick, self._registered = params[0], True
            writer.write(f"JOIN {self.channel}\r\n".encode())
        elif cmd == "433":
            self._nick_taken(writer)
        elif cmd == "432":
            self._nick_refused(line, writer)
        elif cmd == "JOIN" and line.nick == self.nick and params and params[0] == self.channel:
            await self._on_joined(writer)
            return True
        elif cmd in ("QUIT", "NICK") and line.nick == self.wanted_nick != self.nick:
            writer.write(f"NICK {self.wanted_nick}\r\n".encode())  # the nick is free again
        elif cmd == "303" and self.nick != self.wanted_nick:  # ISON: who of these is on
            if self.wanted_nick not in (params[-1].split() if params else ()):
                writer.write(f"NICK {self.wanted_nick}\r\n".encode())  # nobody holds it
        elif cmd == "NICK" and line.nick == self.nick and params:
            self.nick = params[0]
        elif cmd == "PRIVMSG" and len(params) == 2:
            self._heard(line.nick, params[0], params[1])
        elif cmd == "ERROR":
            raise ValueError(f"the server closed the link: {' '.join(params)}")
        await writer.drain()
        return False

    async def _set_joined(self, joined: bool) -> None:
        cond = self._cond
        assert cond is not None
        async with cond:
            self._joined = joined
            cond.notify_all()

    def _heard(self, sender: str, target: str, text: str) -> None:
        """A line on the channel addressed to us, or a private one: answer it."""
        if target == self.nick:
            question, reply_to, lead = text, sender, ""
        else:
            head, sep, rest = text.partition(" ")
            if target != self.channel or not sep or head.rstrip(":,") != self.nick:
                return
            if head[-1:] not in (":", ","):
                return
            question, reply_to, lead = rest, self.channel, f"{sender}: "
        task = asyncio.create_task(self._answer(sender, question, reply_to, lead))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer(self, sender: str, question: str, reply_to: str, lead: str) -> None:
        started = time.perf_counter()
        answer = await self._respond(question, sender)
        try:
            await self._enqueue(reply_to, lead + answer)
        except (QueueFull, NoServer) as exc:
            self.context.logger.warning("dropped the answer to %s: %s", sender, exc.message)
            return
        self.context.metrics.observe("irc_answer_seconds", time.perf_counter() - started)

    async def _respond(self, text: str, session: str) -> str:
        """The conversation service's answer, or a line saying why there is none."""
        service = self._conversation
        if service is None:
            try:
                service = self.context.services.require("conversation", "^1")
            except ServiceError as exc:
                return f"(no conversation service: {exc.message})"
            self._conversation = service
        try:
            answer = await service.respond(text=text, session=f"irc:{session}")
        except PlugbayError as exc:
            self._conversation = None
            self.context.logger.warning("conversation service failed: %s", exc)
            return f"(the conversation service failed: {exc.code})"
        return answer if isinstance(answer, str) else "(the conversation service sent no text)"
