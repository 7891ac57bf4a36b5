"""A real IRC server for the tests: Debian's ngIRCd on a free port of 127.0.0.1, and a
plain IRC client to talk to whoever joins its channel."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

NGIRCD = Path("/usr/sbin/ngircd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class IrcServer:
    """ngIRCd in the foreground; ``stop`` and ``start`` again keep its port."""

    def __init__(self, directory: Path, port: int | None = None, ping_timeout: int = 120) -> None:
        self.port = port or free_port()
        self.config = directory / "ngircd.conf"
        self.config.write_text(
            "[Global]\nName = irc.plugbay.test\nInfo = plugbay test server\n"
            f'Listen = 127.0.0.1\nPorts = {self.port}\nMotdPhrase = "plugbay tests"\n'
            "AdminInfo1 = plugbay\nAdminInfo2 = tests\nAdminEMail = root@localhost\n"
            f"[Limits]\nPingTimeout = {ping_timeout}\nPongTimeout = 20\nMaxNickLength = 30\n"
            "[Options]\nDNS = no\nIdent = no\nPAM = no\n"
        )
        self.log = directory / "ngircd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> None:
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [str(NGIRCD), "--nodaemon", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ngircd exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"ngircd did not listen on {self.port}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def ircd(directory: Path) -> Iterator[IrcServer]:
    server = IrcServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Client:
    """A person on the channel: registers, joins, says lines, collects what it hears."""

    def __init__(
        self, port: int, nick: str = "alice", channel: str = "#plugbay", *, join: bool = True
    ) -> None:
        self.port, self.nick, self.channel, self.join = port, nick, channel, join
        self.registered = False
        self.heard: list[tuple[float, str, str]] = []  # (time, sender, text) on the channel
        self.joined: set[str] = set()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def connect(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        self._send(f"NICK {self.nick}", f"USER {self.nick} 0 * :{self.nick}")
        self._task = asyncio.create_task(self._read())
        await self.until(
            lambda: self.nick in self.joined if self.join else self.registered, timeout
        )

    def _send(self, *lines: str) -> None:
        assert self._writer is not None
        self._writer.write("".join(f"{line}\r\n" for line in lines).encode())

    def say(self, text: str) -> None:
        self._send(f"PRIVMSG {self.channel} :{text}")

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` as it is (bytes that are not UTF-8, say)."""
        assert self._writer is not None
        self._writer.write(data)

    async def _read(self) -> None:
        assert self._reader is not None
        while raw := await self._reader.readline():
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            prefix, _, rest = text[1:].partition(" ") if text.startswith(":") else ("", "", text)
            nick = prefix.split("!", 1)[0]
            if rest.startswith("PING"):
                self._send("PONG " + rest[5:])
            elif rest.startswith("001 "):
                self.registered = True
                if self.join:
                    self._send(f"JOIN {self.channel}")
            elif rest.startswith("JOIN"):
                self.joined.add(nick)
            elif rest.startswith("353 "):  # the names on the channel when we join it
                self.joined.update(n.lstrip("~&@%+") for n in rest.split(" :", 1)[1].split())
            elif rest.startswith(("QUIT", "PART")):
                self.joined.discard(nick)
            elif rest.startswith("NICK ") and nick in self.joined:  # a member renamed
                self.joined.discard(nick)
                self.joined.add(rest[5:].lstrip(":").strip())
            elif rest.startswith(f"PRIVMSG {self.channel} :"):
                self.heard.append((time.monotonic(), nick, rest.split(" :", 1)[1]))
            self._changed.set()

    async def until(self, check: object, timeout: float = 20) -> None:
        """Wait until ``check()`` is true (each line heard re-checks it)."""
        assert callable(check)
        async with asyncio.timeout(timeout):
            while not check():
                self._changed.clear()
                await self._changed.wait()

    def texts(self, sender: str | None = None) -> list[str]:
        return [t for _, s, t in self.heard if sender is None or s.startswith(sender)]

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._send("QUIT :bye")
                await self._writer.drain()
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self._task
