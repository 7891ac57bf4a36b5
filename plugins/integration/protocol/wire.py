"""plugbay-line/1 on the wire: framing, requests, responses, and the client side.

Grammar (ABNF, RFC 5234; the full description is PROTOCOL.md)::

    line      = content [CR] LF          ; content: UTF-8, at most 4096 octets
    request   = hello / ping / say / quit ; the verb is case-insensitive
    hello     = "HELLO" SP name           ; name: the rest of the line
    ping      = "PING"
    say       = "SAY" SP text             ; text: the rest of the line
    quit      = "QUIT"
    response  = welcome / pong / reply / bye / err
    welcome   = "WELCOME" SP name SP "plugbay-line/1"
    pong      = "PONG"
    reply     = "REPLY" SP text
    bye       = "BYE"
    err       = "ERR" SP code [SP detail]
    code      = "line-too-long" / "bad-encoding" / "unknown-command" / "bad-argument"
              / "unavailable" / "failed" / "too-many-clients" / "idle-timeout"
    push      = "MSG" SP text             ; from the server, at any time

The server answers every request line with exactly one response line, in
order, and ends its lines with LF alone. ``MSG`` lines may come between
responses; a client skips them while it waits for an answer.

Nothing here imports plugbay: this module is the protocol, the plugin serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_LINE",
    "VERSION",
    "Deadline",
    "LineTooLong",
    "PeerError",
    "PeerTimeout",
    "Request",
    "encode",
    "fit",
    "parse",
    "read_line",
    "talk",
]

VERSION: Final = "plugbay-line/1"
#: octets of one line's content, not counting CR LF
MAX_LINE: Final = 4096
#: what a StreamReader must accept to see a whole line: the content and a CR before the LF
READ_LIMIT: Final = MAX_LINE + 1


class LineTooLong(ValueError):
    """A line's content is longer than :data:`MAX_LINE` octets."""


class PeerError(ConnectionError):
    """A peer answered, but not as plugbay-line/1 says it should."""


class PeerTimeout(ConnectionError):
    """A peer did not answer in time.

    Deliberately not a ``TimeoutError``: the host takes any ``TimeoutError`` out of
    a command for its own call timeout and reports that instead, which would lose
    which peer it was and how long was allowed.
    """


@dataclass(frozen=True, slots=True)
class Request:
    verb: str  # upper case
    word: str  # as the client wrote it (for ERR unknown-command)
    argument: str


def parse(line: str) -> Request:
    word, _, rest = line.strip().partition(" ")
    return Request(word.upper(), word, rest.strip())


def fit(text: str, room: int = MAX_LINE) -> str:
    """``text`` as one line (every run of white space, line breaks too, becomes one
    space) of at most ``room`` octets of UTF-8, cut at a character boundary."""
    flat = " ".join(text.split())
    data = flat.encode("utf-8", "replace")
    if len(data) <= room:
        return flat
    return data[:room].decode("utf-8", "ignore")


def encode(line: str) -> bytes:
    return line.encode("utf-8", "replace") + b"\n"


async def read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line's content (CR LF removed); None at the end of the stream.

    Raises :class:`LineTooLong`; the reader must have been made with ``limit=READ_LIMIT``.
    A last line without LF before the end of the stream counts as a line.
    """
    try:
        raw = await reader.readline()
    except (ValueError, asyncio.LimitOverrunError):
        raise LineTooLong(f"a line is longer than {MAX_LINE} octets") from None
    if not raw:
        return None
    content = raw[:-1] if raw.endswith(b"\n") else raw
    if content.endswith(b"\r"):
        content = content[:-1]
    if len(content) > MAX_LINE:
        raise LineTooLong(f"a line is longer than {MAX_LINE} octets")
    return content


# --------------------------------------------------------------------------- the client


class Deadline:
    """One timeout for a call of several steps (``send``: look the name up, then talk),
    computed once: each step is given what is left of it, and a step with nothing left
    is refused in the timeout's words (:meth:`left`)."""

    __slots__ = ("_at", "_clock", "timeout")

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._at = clock() + timeout

    def left(self, host: str, port: int) -> float:
        """The seconds left; :class:`PeerTimeout` naming ``host:port`` when none are."""
        left = self._at - self._clock()
        if left <= 0:
            peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise PeerTimeout(f"peer {peer} did not answer within {self.timeout:g} s")
        return left


async def talk(host: str, port: int, name: str, text: str, deadline: Deadline) -> str:
    """HELLO, SAY ``text``, QUIT with the peer at ``host:port``, within what is left of
    ``deadline``; the text of its REPLY.

    Raises ConnectionError: refused or closed, :class:`PeerError` for a wrong
    answer, :class:`PeerTimeout` for none in time (none left: not connected); each
    names ``host:port``.
    """
    peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    left = deadline.left(host, port)
    try:
        async with asyncio.timeout(left):
            try:
                reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT)
            except OSError as exc:
                raise ConnectionError(f"cannot reach peer {peer}: {exc.strerror or exc}") from None
            try:
                await _ask(reader, writer, peer, f"HELLO {name}", "WELCOME")
                reply = await _ask(reader, writer, peer, f"SAY {text}", "REPLY")
                with contextlib.suppress(ConnectionError):
                    await _ask(reader, writer, peer, "QUIT", "BYE")
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except TimeoutError:
        raise PeerTimeout(f"peer {peer} did not answer within {deadline.timeout:g} s") from None
    return reply


async def _ask(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str, line: str, want: str
) -> str:
    """Send one request; the argument of the expected response (MSG pushes are skipped)."""
    verb = line.split(" ", 1)[0]
    try:
        writer.write(encode(line))
        await writer.drain()
        while True:
            content = await read_line(reader)
            if content is None:
                break
            answer = content.decode("utf-8", "replace")
            head, _, rest = answer.partition(" ")
            if head == "MSG":
                continue
            if head != want:
                raise PeerError(f"peer {peer} answered {verb} with {fit(answer, 200)!r}")
            return rest
    except LineTooLong:
        raise PeerError(f"peer {peer} sent a line longer than {MAX_LINE} octets") from None
    except PeerError:
        raise
    except OSError as exc:
        raise ConnectionError(f"lost peer {peer} during {verb}: {exc.strerror or exc}") from None
    raise ConnectionError(f"peer {peer} closed the connection after {verb}")
