"""The IRC lines the plugin reads and writes (RFC 1459 / 2812), and its send pacing.

Only what a channel bot needs: registration (NICK, USER, 001, 432, 433), JOIN, PING/PONG,
PRIVMSG, QUIT. A line is at most 512 octets with its CR LF; a longer reply is cut
at a character boundary, and a line from the server longer than 64 KiB is skipped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_LINE", "Line", "Pacer", "check_target", "fit", "parse", "privmsg", "read_line"]

MAX_LINE: Final = 512
#: what no channel or nick holds: a space or comma would name more targets, CR, LF or
#: NUL would end the line and start a command of the caller's choosing
_NOT_IN_TARGET: Final = frozenset(" ,\r\n\x00\x07")


@dataclass(frozen=True, slots=True)
class Line:
    """One line from the server: ``:prefix COMMAND params… :trailing``."""

    prefix: str
    command: str
    params: tuple[str, ...]

    @property
    def nick(self) -> str:
        """The sender's nick (the prefix up to ``!``)."""
        return self.prefix.split("!", 1)[0]


async def read_line(reader: asyncio.StreamReader) -> bytes:
    """The next line from the server with its LF, or b"" at the end of the stream.

    A line longer than the reader's limit (64 KiB; an IRC line is 512 octets) is
    skipped whole: a server that sends one garbled line keeps its connection.
    """
    skipping = False
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # the end: a last line without LF
            return b"" if skipping else exc.partial
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)  # drop it, and the rest up to its LF
            skipping = True
            continue
        if not skipping:
            return line
        skipping = False


def parse(raw: str) -> Line:
    """A server line as :class:`Line` (an empty command when there is nothing to parse)."""
    text = raw.rstrip("\r\n")
    prefix = ""
    if text.startswith(":"):
        prefix, _, text = text[1:].partition(" ")
    head, sep, trailing = text.partition(" :")
    words = head.split()
    if not words:
        return Line(prefix, "", ())
    params = [*words[1:], trailing] if sep else words[1:]
    return Line(prefix, words[0].upper(), tuple(params))


def fit(text: str, room: int) -> str:
    """``text`` on one line, cut to ``room`` octets of UTF-8 at a character boundary."""
    flat = " ".join(text.replace("\r", " ").replace("\n", " ").split())
    data = flat.encode("utf-8")
    if len(data) <= room:
        return flat
    return data[:room].decode("utf-8", errors="ignore")


def check_target(target: str) -> None:
    """Refuse (ValueError, saying why) a ``target`` that is not one channel or nick."""
    if (
        not target
        or target.startswith(":")
        or not _NOT_IN_TARGET.isdisjoint(target)
        or len(target.encode()) > 200
    ):
        raise ValueError(
            f"target {target!r} is not one channel or nick: give a channel ('#plugbay') "
            "or a nick, without spaces, commas, CR, LF or NUL, not starting with ':', "
            "at most 200 octets"
        )


def privmsg(target: str, text: str) -> str:
    """``PRIVMSG target :text`` that fits a line (the server adds our prefix when it
    relays it, so room is left for a 100-octet ``:nick!user@host``)."""
    head = f"PRIVMSG {target} :"
    return head + fit(text, MAX_LINE - 2 - len(head.encode()) - 100)


class Pacer:
    """A token bucket: ``burst`` lines at once, then ``rate`` lines a second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def wait(self) -> float:
        """Seconds until a line may go (0: now); takes its token when it may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
