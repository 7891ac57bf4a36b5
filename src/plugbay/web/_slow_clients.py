"""A request's head must arrive within a bound: a client cannot hold a connection open
for ever by sending nothing, or its headers a byte at a time (a "slowloris").

uvicorn times out only an idle kept-alive connection: a connection that never sends a
whole request head waits without end, before any token is asked for (the gate sees a
request only once its head is complete). :class:`HeadDeadline` is uvicorn's HTTP/1.1
protocol with a deadline from the connection (or from the end of the previous response)
to the end of the next request's head; past it the client gets a 408 in the API's error
shape and the connection is closed.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Final

import msgspec
from uvicorn.protocols.http.h11_impl import H11Protocol

from plugbay.web._errors import http_error
from plugbay.web._gate import SECURITY_HEADERS

__all__ = ["HEAD_SECONDS", "HeadDeadline"]

#: seconds a client has to send a request's whole head (request line and headers)
HEAD_SECONDS: Final = 10.0


def _late_answer(seconds: float) -> bytes:
    error = http_error(
        "request_timeout",
        f"the request's headers did not arrive whole within {seconds:g} s",
        hint="send the request line and headers at once; the connection is closed",
        limit_seconds=seconds,
    )
    body = msgspec.json.encode({"error": error.to_dict()})
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
        f"x-request-id: {secrets.token_hex(8)}\r\n"
    )
    # the headers every response of the host carries (``_gate``)
    stamped = "".join(f"{k.decode()}: {v.decode()}\r\n" for k, v in SECURITY_HEADERS)
    return (head + stamped + "\r\n").encode("latin-1") + body


class HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol, with :data:`HEAD_SECONDS` for each request's head."""

    #: set on the class by a test that cannot wait ten seconds
    head_seconds: float = HEAD_SECONDS
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a whole head arrived: the request is the app's now
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.head_seconds, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served: not a head that is late
        self.transport.write(_late_answer(self.head_seconds))
        self.transport.close()
