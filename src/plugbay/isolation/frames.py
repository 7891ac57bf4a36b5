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
from typing import Any, Final

import msgspec

__all__ = [
    "MAX_FRAME",
    "Call",
    "Cancel",
    "Cleanup",
    "Fail",
    "FrameError",
    "HostCall",
    "HostReply",
    "Init",
    "Load",
    "Loaded",
    "Log",
    "Message",
    "Outbox",
    "Ping",
    "Pong",
    "RemoteCommand",
    "Reply",
    "read_frame",
    "write_frame",
]

MAX_FRAME: Final = 16 * 1024 * 1024
_HEADER: Final = struct.Struct(">I")


class RemoteCommand(msgspec.Struct, frozen=True):
    """What the host knows of a command that lives in a worker."""

    name: str
    signature: str
    description: dict[str, Any]
    schema: dict[str, Any]
    timeout: float | None = None


class Load(msgspec.Struct, tag=True):
    """host → worker: import the plugin described by this manifest."""

    manifest_path: str
    plugin_id: str
    config: dict[str, Any]
    data_dir: str
    host_version: str
    mode: str


class Loaded(msgspec.Struct, tag=True):
    commands: list[RemoteCommand]
    custom_execute: bool


class Init(msgspec.Struct, tag=True):
    id: int


class Call(msgspec.Struct, tag=True):
    id: int
    command: str
    params: dict[str, Any]
    strict: bool = True


class Cancel(msgspec.Struct, tag=True):
    id: int


class Cleanup(msgspec.Struct, tag=True):
    id: int


class Ping(msgspec.Struct, tag=True):
    id: int


class Pong(msgspec.Struct, tag=True):
    id: int


class Reply(msgspec.Struct, tag=True):
    """worker → host: the result of request ``id`` (plain data)."""

    id: int
    value: Any = None


class Fail(msgspec.Struct, tag=True):
    """worker → host: request ``id`` failed; ``error`` is ``PlugbayError.to_dict()``."""

    id: int
    error: dict[str, Any]


class HostCall(msgspec.Struct, tag=True):
    """worker → host: call another plugin's command (a required service)."""

    id: int
    plugin: str
    command: str
    params: dict[str, Any]


class HostReply(msgspec.Struct, tag=True):
    id: int
    value: Any = None
    error: dict[str, Any] | None = None


class Log(msgspec.Struct, tag=True):
    level: int
    logger: str
    message: str


Message = (
    Load
    | Loaded
    | Init
    | Call
    | Cancel
    | Cleanup
    | Ping
    | Pong
    | Reply
    | Fail
    | HostCall
    | HostReply
    | Log
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


class FrameError(Exception):
    """The peer sent something that is not a valid frame."""


def encode(message: Message) -> bytes:
    body = _encoder.encode(message)
    if len(body) > MAX_FRAME:
        raise FrameError(f"a message of {len(body)} bytes is over the {MAX_FRAME}-byte frame limit")
    return _HEADER.pack(len(body)) + body


def decode(body: bytes) -> Message:
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise FrameError(f"malformed frame: {exc}") from None


async def read_frame(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None at a clean end of stream (between frames)."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError("the stream ended inside a frame header") from None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise FrameError(f"a frame of {size} bytes is over the {MAX_FRAME}-byte limit")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise FrameError(f"the stream ended inside a {size}-byte frame") from None
    return decode(body)


def write_frame(writer: asyncio.StreamWriter, message: Message) -> None:
    writer.write(encode(message))


class Outbox:
    """Frames written in one turn of the event loop leave in one write (one syscall)."""

    __slots__ = ("_chunks", "_loop", "_scheduled", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._chunks: list[bytes] = []
        self._scheduled = False
        self._loop = asyncio.get_running_loop()

    def send(self, message: Message) -> None:
        self._chunks.append(encode(message))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._chunks:
            data = b"".join(self._chunks)
            self._chunks.clear()
            if not self.writer.is_closing():
                self.writer.write(data)
