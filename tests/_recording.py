"""A transport that records what a channel writes, for tests of the wire's framing."""

from __future__ import annotations

import asyncio


class Recording(asyncio.Transport):
    """A transport that keeps what a channel writes, one entry a write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0
