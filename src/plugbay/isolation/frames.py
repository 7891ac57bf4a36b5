"""The wire between the host and a worker: length-prefixed msgspec (MessagePack) frames.

A frame is a 4-byte big-endian length followed by one MessagePack-encoded
message. Messages form one tagged union, so a frame that does not decode to a
known message, is larger than :data:`MAX_FRAME`, or stops half way is a
protocol violation: the reader raises :class:`FrameError` and the sender is
treated as broken (never trusted to resynchronise).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Any, Final, cast

import msgspec

from plugbay.isolation._deadline_io import read_some, write_all
from plugbay.isolation.messages import (
    CHECKED_BY,
    Call,
    Cancel,
    ChangeConfig,
    Cleanup,
    Describe,
    ExportState,
    Fail,
    HostCall,
    HostReply,
    ImportState,
    Init,
    Load,
    Loaded,
    LoadManifest,
    Log,
    Many,
    Message,
    Metrics,
    Ping,
    Pong,
    Profile,
    RemoteCommand,
    Reply,
    Sample,
    Security,
)

__all__ = [
    "CHECKED_BY",
    "MAX_FRAME",
    "Call",
    "Cancel",
    "ChangeConfig",
    "Channel",
    "Cleanup",
    "Describe",
    "ExportState",
    "Fail",
    "FrameError",
    "HostCall",
    "HostReply",
    "ImportState",
    "Init",
    "Load",
    "LoadManifest",
    "Loaded",
    "Log",
    "Many",
    "Message",
    "Metrics",
    "Ping",
    "Pong",
    "Profile",
    "RemoteCommand",
    "Reply",
    "Sample",
    "Security",
]

MAX_FRAME: Final = 16 * 1024 * 1024
_HEADER: Final = struct.Struct(">I")
_size_of: Final = _HEADER.unpack_from
#: a frame read whole is decoded from a copy of its body below this size, else in place
_COPY_BELOW: Final = 4096


_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message | Many] = msgspec.msgpack.Decoder(Message | Many)
#: a ``Many`` frame's body up to its list's items: the map, its tag, the field's name
_MANY_HEAD: Final = _encoder.encode(Many([]))[:-1]
#: the kinds ``Many`` joins, and the largest body joined (a larger one is a frame alone)
_JOINED: Final = frozenset({Call, Reply})
_JOIN_AT_MOST: Final = 4096


def _list_head(n: int) -> bytes:
    """MessagePack's array header for ``n`` items."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


_PEEK: Final = 16


def _kind(buf: bytearray, start: int) -> str:
    """The tag of the message starting at ``start`` (msgspec writes it first), or ""."""
    head = bytes(buf[start : start + _PEEK])
    at = head.find(b"\xa4type")
    if at < 0 or at + 6 > len(head):
        return ""
    length = head[at + 5] - 0xA0
    if not 0 < length < 32:
        return ""
    return head[at + 6 : at + 6 + length].decode("ascii", "replace")


class FrameError(Exception):
    """The peer sent something that is not a valid frame."""


def encode(message: Message) -> bytes:
    body = _encoder.encode(message)
    if len(body) > MAX_FRAME:
        raise FrameError(f"a message of {len(body)} bytes is over the {MAX_FRAME}-byte frame limit")
    return _HEADER.pack(len(body)) + body


def decode(body: bytes) -> Message:
    """One message (a ``Many`` frame is a channel's business: ``Channel`` unpacks it)."""
    try:
        message = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise FrameError(f"malformed frame: {exc}") from None
    if isinstance(message, Many):
        raise FrameError("a Many frame where one message was expected")
    return message


#: frames up to this size sent in one loop turn are joined into one write
_BATCH_BYTES = 64 * 1024


class Channel(asyncio.Protocol):
    """One end of the wire as an asyncio protocol: every complete frame that arrives is
    decoded and handed to ``on_message`` in the same pass (no per-frame awaiting)."""

    def __init__(
        self,
        on_message: Callable[[Message], None],
        on_close: Callable[[str | None, bool], None],
    ) -> None:
        self._on_message = on_message
        self._on_close = on_close
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self._closed = False
        #: frames waiting to leave together, encoded in place (``send``)
        self._out = bytearray()
        #: the bodies of joined calls or answers sent since the last other frame, back to
        #: back, and how many: they leave as one ``Many`` frame (``_close_group``); its
        #: first bytes are kept for the header of the frame a lone one leaves in (``_drain``)
        self._group = bytearray(_HEADER.size)
        self._grouped = 0
        self._scheduled = False
        #: inside ``data_received``: what is sent is joined and leaves once the read is done
        self._receiving = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: a frame that left alone makes the rest of its loop turn's frames wait for the
        #: turn's end (a worker, whose sends outside a read come from its tasks); off, a
        #: lone frame costs no extra loop turn and the sender says which frames are among
        #: others (``more``): the host, which knows how many requests are in flight
        self.join_turn = True
        #: a read that handed on several frames woke several callers (the host: answers to
        #: requests in flight): what they send in the loop turn that runs them leaves in
        #: one write at its end, not the first frame alone and the rest after it
        self.join_after_read = False
        #: the largest read taken as one whole frame where it lies (``data_received``)
        self._whole_at_most = MAX_FRAME - 1 + _HEADER.size
        #: the largest frame this end accepts (the host lowers it per plugin: ``monitor.bounds``)
        self._max_frame = MAX_FRAME
        #: frames of at least ``skip_above`` bytes are shown to ``skip`` (their kind, from the
        #: tag, and size) before they are decoded; when it says so, their bytes are thrown
        #: away as they arrive, never buffered whole nor decoded (a flood of huge log records)
        self.skip: Callable[[str, int], bool] | None = None
        self._skip_above = MAX_FRAME
        self._skipping = 0
        #: bytes a second of thrown-away frames before this end stops reading for a moment:
        #: a peer that floods pays with its own stalled writes, not with the reader's loop
        self.discard_rate: float | None = None
        self._discard_tokens = 0.0
        self._discard_at = 0.0
        #: how far ``data_received`` has handed frames on (``round_trip`` looks past it)
        self._parsed = 0
        #: a worker's answer to a call alone in its read, made at once: its whole frame
        #: (``encode``), or None when not answered now (``on_message`` takes the call)
        self.answer: Callable[[Call], bytes | None] | None = None
        #: the host's settling of a request (id, value): a lone answer goes straight to it
        self.settle: Callable[[int, Any], None] | None = None

    @property
    def max_frame(self) -> int:
        return self._max_frame

    @max_frame.setter
    def max_frame(self, size: int) -> None:
        self._max_frame = size
        self._whole_at_most = min(size, self._skip_above - 1) + _HEADER.size

    @property
    def skip_above(self) -> int:
        return self._skip_above

    @skip_above.setter
    def skip_above(self, size: int) -> None:
        self._skip_above = size
        self._whole_at_most = min(self._max_frame, size - 1) + _HEADER.size

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the same methods without subclassing asyncio's
        self.transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()

    def _discarded(self, size: int) -> None:
        rate = self.discard_rate
        transport = self.transport
        if rate is None or transport is None:
            return
        now = time.monotonic()
        burst = rate / 10
        self._discard_tokens = min(burst, self._discard_tokens + (now - self._discard_at) * rate)
        self._discard_at = now
        self._discard_tokens -= size
        if self._discard_tokens < 0 and not transport.is_closing():
            transport.pause_reading()
            pause = min(0.2, -self._discard_tokens / rate)
            asyncio.get_running_loop().call_later(pause, self._resume)

    def _resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        """Every complete frame of this read is handed over; what the handlers send in
        reply leaves in one write once the read is done (one write per read, whatever
        the number of frames it held)."""
        self._receiving = True
        handed = 0
        try:
            # the common read, one whole frame and nothing before it, is decoded where it
            # lies (not copied into the buffer and out again); any other goes through it
            if (
                _HEADER.size < len(data) <= self._whole_at_most
                and not self._buffer
                and not self._skipping
                and _size_of(data)[0] == len(data) - _HEADER.size
            ):
                handed = self._whole(data)
            else:
                handed = self._received(data)
        finally:
            self._receiving = False
            if self._out or self._grouped:
                self._drain()
        if handed > 1 and self.join_after_read and not self._scheduled:
            # the woken callers run in the next loop turn, before this flush (FIFO)
            self._schedule()

    def _whole(self, data: bytes) -> int:
        """Hand on the one whole frame ``data`` is; how many messages. A lone call's answer
        (``answer``) leaves as made, after what its command sent; a lone answer settles."""
        try:
            # a small frame is copied (cheaper than a view), a large one decoded in place
            message = _decoder.decode(
                data[_HEADER.size :]
                if len(data) < _COPY_BELOW
                else memoryview(data)[_HEADER.size :]
            )
            frame = None
            if type(message) is Call and self.answer is not None:
                frame = self.answer(message)
            if frame is not None:
                if self._out or self._grouped:
                    self._close_group()
                    self._out += frame
                else:
                    self._write(frame)
                handed = 1
            elif type(message) is Reply and self.settle is not None:
                self.settle(message.id, message.value)
                handed = 1
            elif isinstance(message, Many):
                handed = self._many(message.messages)
            else:
                self._on_message(message)
                handed = 1
        except (msgspec.DecodeError, RecursionError) as exc:  # nested past the decoder's depth
            self.close(f"malformed frame: {exc}", protocol_error=True)
            return 0
        except FrameError as exc:
            self.close(str(exc), protocol_error=True)
            return 0
        if self._buffer:  # frames a handler's ``round_trip`` read past its answer
            handed += self._received(b"")
        return handed

    def _many(self, messages: list[Call | Reply]) -> int:
        settle, on_message = self.settle, self._on_message  # answers settle, as one alone
        for one in messages:
            if settle is not None and type(one) is Reply:
                settle(one.id, one.value)
            else:
                on_message(one)
        return len(messages)

    def _received(self, data: bytes) -> int:
        """Hand on every complete frame of ``data``; how many were handed on."""
        if self._skipping:
            if len(data) <= self._skipping:
                self._skipping -= len(data)
                self._discarded(len(data))
                return 0
            self._discarded(self._skipping)
            data = data[self._skipping :]
            self._skipping = 0
        buf = self._buffer
        buf += data
        offset = handed = 0
        size_of_header = _HEADER.size
        unpack, decode_body, on_message = _HEADER.unpack_from, _decoder.decode, self._on_message
        max_frame, skip_above = self.max_frame, self.skip_above
        try:
            while len(buf) - offset >= size_of_header:
                (size,) = unpack(buf, offset)
                if size > max_frame:
                    raise FrameError(f"a frame of {size} bytes is over the {max_frame}-byte limit")
                end = offset + size_of_header + size
                if (
                    size >= skip_above
                    and self.skip is not None
                    and len(buf) - offset >= size_of_header + _PEEK
                    and self.skip(_kind(buf, offset + size_of_header), size)
                ):
                    if len(buf) < end:  # the rest is thrown away as it arrives
                        self._skipping = end - len(buf)
                        self._discarded(len(buf) - offset)
                        offset = len(buf)
                        break
                    self._discarded(end - offset)
                    offset = end
                    continue
                if len(buf) < end:
                    break
                # a slice of the buffer, decoded as it is (a copy: a handler may grow the
                # buffer, see ``round_trip``, so no view of it outlives this line)
                message = decode_body(buf[offset + size_of_header : end])
                offset = self._parsed = end
                if isinstance(message, Many):
                    handed += self._many(message.messages)
                    continue
                handed += 1
                on_message(message)
        except (msgspec.DecodeError, RecursionError) as exc:  # nested past the decoder's depth
            self.close(f"malformed frame: {exc}", protocol_error=True)
            return handed
        except FrameError as exc:
            self.close(str(exc), protocol_error=True)
            return handed
        finally:
            self._parsed = 0
        del buf[:offset]
        return handed

    def eof_received(self) -> bool | None:
        if self._buffer:
            self.close(
                f"the stream ended inside a frame ({len(self._buffer)} bytes pending)",
                protocol_error=True,
            )
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(str(exc) if exc else None, False)

    def send(self, message: Message, *, more: bool = False) -> None:
        """The first frame of a loop turn leaves at once (no latency for a lone call); small ones
        after it in the same turn are joined into one write at its end, and so is every frame sent
        while a read is handled (they leave when it is done, see ``data_received``) or that the
        sender says is one of many (``more``: other requests are in flight, whose answers will wake
        this end anyway). Frames are encoded straight into the pending buffer (no bytes object per
        frame, no join); small calls and answers among them travel as one ``Many`` frame, decoded at
        once. Once it holds ``_BATCH_BYTES``, the frames before this one leave, then it, so a burst
        of big frames neither waits in this end's memory nor is copied again."""
        if not (self._scheduled or self._receiving or more):
            # this frame alone, at once (nothing is pending outside a turn or a read)
            data = encode(message)
            if self.join_turn:
                self._schedule()
            self._write(data)
            return
        out = self._out
        if type(message) in _JOINED:
            group = self._group
            at = len(group)
            try:
                _encoder.encode_into(message, group, at)
            except BaseException:
                del group[at:]
                raise
            if len(group) - at <= _JOIN_AT_MOST:  # small: it joins the group
                self._grouped += 1
                if len(out) + len(group) >= _BATCH_BYTES:
                    self._drain()
                elif not (self._scheduled or self._receiving):
                    self._schedule()
                return
            start = self._alone_after_group(at)
        else:
            self._close_group()  # the calls or answers before it go first
            start = self._append(message)
        self._added(start)

    def send_encoded(self, body: bytes) -> None:
        """Send ``body``, a message encoded already (an emit's: at most ``MAX_FRAME``)."""
        if not (self._scheduled or self._receiving):
            if self.join_turn:
                self._schedule()
            self._write(_HEADER.pack(len(body)) + body)
            return
        self._close_group()
        self._added(self._append_encoded(body))

    def _added(self, start: int) -> None:  # the frame at ``start``: leaves when full or later
        if len(self._out) + len(self._group) >= _BATCH_BYTES:
            self._drain(start if len(self._out) > start else 0)
        elif not (self._scheduled or self._receiving):
            self._schedule()

    def _alone_after_group(self, at: int) -> int:
        """The large call or answer encoded at ``at`` of the group leaves as a frame of its
        own, after the group; where it starts in the pending buffer."""
        group = self._group
        body = group[at:]
        del group[at:]
        if len(body) > MAX_FRAME:
            raise FrameError(
                f"a message of {len(body)} bytes is over the {MAX_FRAME}-byte frame limit"
            )
        self._close_group()
        return self._append_encoded(body)

    def _append_encoded(self, body: bytes | bytearray) -> int:
        """``body`` framed at the end of the pending buffer; where it starts."""
        out = self._out
        start = len(out)
        out += _HEADER.pack(len(body))
        out += body
        return start

    def send_many(self, messages: list[Message]) -> None:
        """A batch of calls, after the pending frames, in writes of about ``_BATCH_BYTES``."""
        self._drain()
        for message in messages:
            self.send(message, more=True)
        self._drain()

    def _append(self, message: Message) -> int:
        """Encode ``message`` as a frame at the end of the pending buffer; where it starts."""
        out = self._out
        start = len(out)
        try:
            _encoder.encode_into(message, out, start + _HEADER.size)
        except BaseException:
            del out[start:]
            raise
        size = len(out) - start - _HEADER.size
        if size > MAX_FRAME:
            del out[start:]
            raise FrameError(f"a message of {size} bytes is over the {MAX_FRAME}-byte frame limit")
        _HEADER.pack_into(out, start, size)
        return start

    def _schedule(self) -> None:
        self._scheduled = True
        (self._loop or asyncio.get_running_loop()).call_soon(self.flush)

    def round_trip(
        self,
        fd: int,
        message: Message,
        reply: type[Message],
        answers: Callable[[Message], bool],
        timeout: float,
    ) -> Message:
        """Send ``message`` and block this thread until the ``reply`` frame that ``answers``
        picks arrives.

        For a synchronous API on the loop's own thread, which cannot await (a plugin on
        a Ray node calling ``context.storage``, whose store the host keeps). The frame
        leaves on ``fd`` directly once everything queued before it has left; frames that
        arrive meanwhile stay in this end's buffer, in order, and are handed on as usual
        (by the ``data_received`` this call may be nested in, else at the loop's next
        turn). Raises ``ConnectionError`` when the channel closes, ``TimeoutError``, and
        ``BlockingIOError`` when earlier frames still wait to leave (a flooded channel).
        """
        transport = self.transport
        if self._closed or transport is None or transport.is_closing():
            raise ConnectionError("the channel to the host is closed")
        self.flush()
        if transport.get_write_buffer_size():
            raise BlockingIOError("earlier frames are still waiting to leave")
        deadline = time.monotonic() + timeout
        write_all(fd, encode(message), deadline)
        buf = self._buffer
        pos = self._parsed  # frames before it were handed on already
        while True:
            while len(buf) - pos >= _HEADER.size:
                (size,) = _HEADER.unpack_from(buf, pos)
                end = pos + _HEADER.size + size
                if size > self.max_frame or len(buf) < end:
                    break  # too large: data_received says so; else: read on
                body = bytes(buf[pos + _HEADER.size : end])
                if _kind(buf, pos + _HEADER.size) == reply.__name__ and answers(
                    found := decode(body)
                ):
                    del buf[pos:end]
                    if buf and not self._parsed:
                        asyncio.get_running_loop().call_soon(self.data_received, b"")
                    return found
                pos = end
            data = read_some(fd, deadline)
            if self._skipping:  # the rest of a frame this end throws away
                cut = min(self._skipping, len(data))
                self._skipping -= cut
                data = data[cut:]
            buf += data

    def flush(self) -> None:
        """Write what is pending now (the end of a loop turn, or before closing)."""
        self._scheduled = False
        self._drain()

    def _close_group(self) -> None:
        """The joined calls or answers leave the group for the pending frames, as one."""
        n = self._grouped
        if n:
            group, out = self._group, self._out
            self._grouped = 0
            size = len(group) - _HEADER.size
            if n == 1:  # one alone: its own frame, its header in the group's first bytes
                _HEADER.pack_into(group, 0, size)
                out += group
            else:
                head = _list_head(n)
                out += _HEADER.pack(len(_MANY_HEAD) + len(head) + size)
                out += _MANY_HEAD
                out += head
                out += memoryview(group)[_HEADER.size :]
            del group[_HEADER.size :]

    def _drain(self, split: int = 0) -> None:
        """Write what is pending: the frames before ``split`` first, then the rest."""
        if self._grouped == 1 and not self._out:
            # the common answer to a read: one call or answer alone, written as it lies
            # in the group (handed over: a new group takes its place)
            group = self._group
            self._group = bytearray(_HEADER.size)
            self._grouped = 0
            _HEADER.pack_into(group, 0, len(group) - _HEADER.size)
            self._write(group)
            return
        self._close_group()
        out = self._out
        if out:
            # handed over: a transport may keep it unsent, so it is never written to again
            self._out = bytearray()
            if split:
                self._write(out[:split])
                self._write(memoryview(out)[split:])
            else:
                self._write(out)

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.transport.write(data)
            except (OSError, MemoryError, RuntimeError) as exc:
                # a frame that cannot leave must not leave the peer waiting for it
                self.close(f"a write failed: {type(exc).__name__}: {exc}")

    def close(self, reason: str | None = None, *, protocol_error: bool = False) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(reason, protocol_error)
        if self.transport is not None:
            self.transport.close()
