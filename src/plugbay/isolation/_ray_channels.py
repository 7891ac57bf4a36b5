"""The host's listener for the channels of its plugins on Ray nodes (``isolation.ray``).

A plugin's remote end (its bare actor, or its node's agent for a sandboxed worker) dials
``[ray] listen`` and sends the one-time token the host handed out for that start
(``isolation._ray_agent.dial``): the host knows whose channel it is from the token,
never from what the channel says later. A connection with no token the host is
waiting for is closed.
"""

from __future__ import annotations

import asyncio
import secrets
import socket

from plugbay.isolation._ray_agent import TOKEN_BYTES

__all__ = ["Channels"]


class Channels:
    """The host's listener for remote plugins' channels: each is claimed by its token."""

    def __init__(self, address: str) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((address, 0))
        self._sock.listen(1024)
        self._sock.setblocking(False)
        self.address = address
        self.port: int = self._sock.getsockname()[1]
        self._waiting: dict[str, asyncio.Future[socket.socket]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._accept())

    def expect(self) -> tuple[str, asyncio.Future[socket.socket]]:
        token = secrets.token_hex(16)
        future: asyncio.Future[socket.socket] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        return token, future

    def forget(self, token: str) -> None:
        future = self._waiting.pop(token, None)
        if future is not None and not future.done():
            future.cancel()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            task = loop.create_task(self._claim(conn))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _claim(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        data = b""
        try:
            async with asyncio.timeout(10):
                while len(data) < TOKEN_BYTES:
                    chunk = await loop.sock_recv(conn, TOKEN_BYTES - len(data))
                    if not chunk:
                        break
                    data += chunk
        except (TimeoutError, OSError):
            data = b""
        future = self._waiting.pop(data[:-1].decode("ascii", "replace"), None)
        if future is None or future.done() or not data.endswith(b"\n"):
            conn.close()  # not a channel the host asked for
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        future.set_result(conn)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
        self._sock.close()
