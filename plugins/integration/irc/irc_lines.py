"""The IRC lines the plugin reads and writes (RFC 1459 / 2812), and its send pacing.

Only what a channel bot needs: registration (NICK, USER, 001, 433), JOIN, PING/PONG,
PRIVMSG, QUIT. A line is at most 512 octets with its CR LF; a longer reply is cut
at a character boundary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_LINE", "Line", "Pacer", "fit", "parse", "privmsg"]

MAX_LINE: Final = 512


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
