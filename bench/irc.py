"""The IRC plugin's message round trip through a real IRC server (Debian's ngIRCd).

A person on the channel says ``plugbay: Men are all alike.``; the plugin hears it
through the server, asks the conversation service (the bundled ELIZA), and its
answer comes back through the server. Measured one message at a time, beside an
anchor measured in the same run on the same server: a bare asyncio client that
echoes each line it hears (the server's own relay cost, twice, and nothing else).
The plugin's send rate is raised for the run (``rate`` 1000/s), so the figure is
the path's cost, not the pacing a real server is owed.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench._report import Figure, print_figures
from plugbay.runtime.host import Host
from tests._ircd import NGIRCD, Client, IrcServer

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 200


async def _round_trips(alice: Client, sender: str, text: str) -> list[float]:
    out = []
    for _ in range(ROUNDS):
        before = len(alice.texts(sender))
        start = time.perf_counter()
        alice.say(text)
        await alice.until(lambda b=before: len(alice.texts(sender)) > b)  # type: ignore[misc]
        out.append(time.perf_counter() - start)
    return out


async def _echo_bot(port: int) -> tuple[asyncio.Task[None], Client]:
    bot = Client(port, nick="echo")
    await bot.connect()

    async def echo() -> None:
        seen = 0
        while True:
            await bot.until(lambda n=seen: len(bot.texts("alice")) > n)  # type: ignore[misc]
            for line in bot.texts("alice")[seen:]:
                if line.startswith("echo: "):
                    bot.say("alice: " + line[6:])
            seen = len(bot.texts("alice"))

    return asyncio.create_task(echo()), bot


async def _measure(work: Path) -> tuple[list[float], list[float]]:
    server = IrcServer(work)
    server.start()
    plugins = work / "plugins"
    for rel in ("core/system", "utility/formatters", "extension/processor", "integration/irc"):
        shutil.copytree(ROOT / "plugins" / rel, plugins / rel)
    try:
        alice = Client(server.port)
        await alice.connect()
        config = {"server": "127.0.0.1", "port": server.port, "rate": 1000.0, "burst": 1000}
        async with Host(
            plugins, state_dir=work / "state", entry_points=False,
            inline=["integration.irc"], config={"integration.irc": config},
        ):  # fmt: skip
            await alice.until(lambda: "plugbay" in alice.joined)
            plugin = await _round_trips(alice, "plugbay", "plugbay: Men are all alike.")
        task, bot = await _echo_bot(server.port)
        await alice.until(lambda: "echo" in alice.joined)
        anchor = await _round_trips(alice, "echo", "echo: Men are all alike.")
        task.cancel()
        await bot.close()
        await alice.close()
        return plugin, anchor
    finally:
        server.stop()


def run() -> int:
    if not NGIRCD.exists():
        print("\n== IRC plugin: skipped, Debian's ngircd is missing ('make ngircd')")
        return 1
    work = Path(tempfile.mkdtemp(prefix="plugbay-bench-irc-"))
    try:
        plugin, anchor = asyncio.run(_measure(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p50, a50 = statistics.median(plugin), statistics.median(anchor)
    p99, a99 = (sorted(xs)[int(len(xs) * 0.99) - 1] for xs in (plugin, anchor))
    figures = [
        Figure(f"IRC round trip through ngIRCd and ELIZA, median of {ROUNDS}", p50,
               "a bare echo client on the same server", a50, "under 20 ms", p50 < 0.020),
        Figure("IRC round trip, p99", p99, "the echo client's p99", a99,
               "within 50 ms of the echo client's", p99 < a99 + 0.050,
               note="both p99s hold ngIRCd's flood throttle: about every 7th line a client "
               "sends back to back waits ~1 s at the server, echo client and plugin alike"),
    ]  # fmt: skip
    print_figures("IRC plugin: a message's round trip through a real server", figures)
    return sum(1 for f in figures if f.passed is False)


if __name__ == "__main__":
    raise SystemExit(run())
