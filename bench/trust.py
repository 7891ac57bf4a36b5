"""The trust boundary's figures: what the broker's check costs, how fast a sandboxed
plugin's logs reach the host's store, and a neighbour's latency under the floods.

Anchors, measured in the same run:

* a host call (plugin → broker → other plugin, both sandboxed) with the broker's
  check switched off (``Broker.enabled = False``: the same route, no check);
* Python's ``logging`` to a file in one process (a ``FileHandler`` with a formatter);
* the neighbour's call latency with nothing else going on (idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench._report import Figure, print_figures
from plugbay.api.errors import PlugbayError

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"

TARGET = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def echo(self, x: int) -> int:
        return x
"""

CALLER = """
import time
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def relay(self, n: int) -> float:
        worker = self.context.services._worker
        start = time.perf_counter()
        for i in range(n):
            await worker.host_call("bench.target", "echo", {"x": i})
        return time.perf_counter() - start
"""

LOGGER = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def spam(self, n: int) -> int:
        log = self.context.logger
        for i in range(n):
            log.info("record %d of the benchmark", i)
            if i % 500 == 499:  # let the worker's loop send what it has (and answer pings)
                await asyncio.sleep(0)
        return n
"""

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

FLOODER = """
import asyncio
from plugbay import UtilityPlugin, command
from plugbay.isolation import frames

class P(UtilityPlugin):
    async def _drain(self) -> None:
        transport = self.context.services._worker.channel.transport
        while transport.get_write_buffer_size() > 0:
            await asyncio.sleep(0.005)

    @command
    async def floods(self) -> None:
        worker = self.context.services._worker
        for n in range(64):
            worker.send(frames.Log(30, "plugbay.plugin.acme.victim", f"flood {n}",
                                   {"blob": "z" * (8 << 20), "security": True}))
            await self._drain()
        for _ in range(300):
            worker.send(frames.Security({"kind": "denied", "plugin": "bench.neighbour",
                                         "operation": "x" * (1 << 20)}))
            await self._drain()
        worker.send(frames.Metrics({"counters": [[f"m{i}", {}, 1.0] for i in range(20_000)]}))
"""


def _plugins(root: Path) -> Path:
    plugins = root / "plugins"
    for plugin_id, code, extra in (
        ("bench.target", TARGET, ""),
        ("bench.caller", CALLER, '[dependencies]\n"bench.target" = "^1.0"\n'),
        ("bench.logger", LOGGER, ""),
        ("bench.neighbour", NEIGHBOUR, ""),
        ("bench.flooder", FLOODER, '[resources]\nmemory = "512MiB"\ntimeout = 120\n'),
    ):
        directory = plugins / plugin_id
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "plugin.toml").write_text(
            f'id = "{plugin_id}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n{extra}'
        )
        (directory / "main.py").write_text(code)
    return plugins


async def _host_calls(host: object, n: int, rounds: int) -> tuple[float, float]:
    """Best per-call seconds of the relay with the check on, and off (rounds interleaved)."""
    from plugbay.runtime.host import Host

    assert isinstance(host, Host)
    broker = host.manager.broker
    on: list[float] = []
    off: list[float] = []
    await host.call("bench.caller", "relay", n=n)  # warm up
    for i in range(rounds):  # alternating which goes first, so drift falls on both
        order = ((True, on), (False, off)) if i % 2 == 0 else ((False, off), (True, on))
        for enabled, into in order:
            broker.enabled = enabled
            into.append(await host.call("bench.caller", "relay", n=n) / n)
    broker.enabled = True
    return min(on), min(off)


def _check_alone(host: object, n: int = 100_000) -> float:
    """Seconds of the broker's own work for one host call (the check, without the call)."""
    from plugbay.runtime.host import Host

    assert isinstance(host, Host)
    broker, manager = host.manager.broker, host.manager
    start = time.perf_counter()
    for _ in range(n):
        budget = manager.budget_for("bench.caller")
        assert budget is not None
        budget.host_calls.allow()
        broker._check_plugin("bench.caller", "bench.target", "echo")
    return (time.perf_counter() - start) / n


async def _log_throughput(host: object, n: int) -> float:
    """Records a second from a sandboxed plugin's logger into the host's SQLite store."""
    from plugbay.runtime.host import Host

    assert isinstance(host, Host) and host.monitor is not None and host.state is not None
    logs, state = host.monitor.logs, host.state
    reader = sqlite3.connect(f"file:{host.state_dir / 'state.db'}?mode=ro", uri=True)

    def stored(after: int) -> int:
        """The logger's records stored past id ``after`` (counted by id, not in all: the
        monitor's retention may prune older ones meanwhile)."""
        row = reader.execute(
            "SELECT COUNT(*) FROM logs WHERE plugin_id = 'bench.logger' AND id > ?", (after,)
        ).fetchone()
        return int(row[0])

    await asyncio.to_thread(logs.persist, state)
    (last,) = reader.execute("SELECT COALESCE(MAX(id), 0) FROM logs").fetchone()
    start = time.perf_counter()
    await host.call("bench.logger", "spam", n=n)
    while True:  # until every record is in the host's store
        await asyncio.to_thread(logs.persist, state)
        if stored(last) >= n:
            break
        if time.perf_counter() - start > 120:
            raise RuntimeError(f"only {stored(last)} of {n} records reached the store")
        await asyncio.sleep(0.005)
    seconds = time.perf_counter() - start
    reader.close()
    return n / seconds


def _file_logging(n: int, directory: Path) -> float:
    """Python's logging to a file in one process: records a second."""
    logger = logging.getLogger("bench.anchor.file")
    logger.propagate = False
    handler = logging.FileHandler(directory / "anchor.log")
    handler.setFormatter(logging.Formatter("%(created)f %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        start = time.perf_counter()
        for i in range(n):
            logger.info("record %d of the benchmark", i)
        handler.flush()
        return n / (time.perf_counter() - start)
    finally:
        logger.removeHandler(handler)
        handler.close()


async def _neighbour_latency(host: object, flood: bool) -> float:
    """Median seconds of the neighbour's ping, idle or while the floods run."""
    from plugbay.runtime.host import Host

    assert isinstance(host, Host)
    samples: list[float] = []
    task = asyncio.create_task(host.call("bench.flooder", "floods")) if flood else None
    deadline = time.perf_counter() + 3.0
    while (task is not None and not task.done()) or (
        task is None and time.perf_counter() < deadline
    ):
        start = time.perf_counter()
        await host.call("bench.neighbour", "ping")
        samples.append(time.perf_counter() - start)
        await asyncio.sleep(0.002)
    if task is not None:
        with contextlib.suppress(PlugbayError):  # a flooder may be stopped: fine here
            await task
    return statistics.median(samples)


async def _figures() -> list[Figure]:
    from plugbay.isolation.policy import IsolationPolicy
    from plugbay.monitor.bounds import Bounds
    from plugbay.runtime.host import Host

    WORK.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=WORK))
    try:
        plugins = _plugins(root)
        # the logger's bounds raised (and the log store's budget): this measures the
        # pipeline's capacity, not the default limit of 500 records a second
        fast = Bounds(log_records_per_second=1e9, log_burst=1e9)
        # and the relay's host-call rate: it measures the broker's check, not the default
        # limit of 2,000 calls a second, which a worker on uvloop outruns
        relay = Bounds(host_calls_per_second=1e9, host_calls_burst=1e9)
        policy = IsolationPolicy(plugin_bounds={"bench.logger": fast, "bench.caller": relay})
        monitor = {"log-rate": 1e9, "log-burst": 1e9, "log-bytes-per-second": 1e12}
        async with Host(
            plugins, state_dir=root / "state", entry_points=False, policy=policy, monitor=monitor
        ) as host:
            checked, unchecked = await _host_calls(host, 100, 41)
            alone = _check_alone(host)
            n = 20_000
            await _log_throughput(host, 1000)  # warm up
            through_host = max([await _log_throughput(host, n) for _ in range(3)])
            idle = await _neighbour_latency(host, flood=False)
            flooded = await _neighbour_latency(host, flood=True)
        to_file = max(_file_logging(n, root) for _ in range(3))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    overhead = checked / unchecked
    return [
        Figure(
            "host call plugin → broker → plugin, with the capability check",
            checked, "the same call, check switched off", unchecked,
            "≤ 1.05× (overhead ≤ 5%)", overhead <= 1.05,
            note=f"the check alone: {alone * 1e6:.2f} µs a call "
            f"({alone / unchecked:.1%} of the unchecked call)",
        ),
        Figure(
            "log records from a sandboxed plugin into the host's SQLite store",
            through_host, "Python logging to a file, one process", to_file,
            "≥ 0.50× the anchor", through_host / to_file >= 0.5, unit="records/s",
        ),
        Figure(
            "a neighbour's call latency (median) under the issue's floods",
            flooded, "the same call, idle", idle,
            "≤ 2× idle", flooded <= 2 * idle,
            note="floods: 64 log records with 8 MiB fields, 300 forged 1 MiB security "
            "frames, 20 000 metric series",
        ),
    ]  # fmt: skip


def run() -> int:
    figures = asyncio.run(_figures())
    print_figures("trust boundary (broker, logs, bounds)", figures)
    return sum(1 for f in figures if f.passed is False)


if __name__ == "__main__":
    raise SystemExit(run())
