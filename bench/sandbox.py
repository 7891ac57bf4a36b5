"""The process backend's figures: call round trip, throughput, worker start, idle memory.

Anchors, measured in the same run: a raw echo between two processes over a
socketpair with msgspec frames (the physical floor of this design), os.fork()
of the host, a fresh `python -c pass`, and forked / fresh idle processes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from bench._report import Figure, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"

ECHO = """
from plugbay import UtilityPlugin, command

class Echo(UtilityPlugin):
    @command
    def echo(self, x: int) -> int:
        return x
"""


def _uss(pid: int) -> int:
    """Unique set size in bytes: private pages, from /proc/PID/smaps_rollup."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------- the floor


def _raw_echo_server(sock: socket.socket) -> None:
    decoder = msgspec.msgpack.Decoder()
    encoder = msgspec.msgpack.Encoder()
    buf = b""
    while True:
        data = sock.recv(1 << 16)
        if not data:
            os._exit(0)
        buf += data
        out = bytearray()
        while len(buf) >= 4:
            size = int.from_bytes(buf[:4], "big")
            if len(buf) < 4 + size:
                break
            msg = decoder.decode(buf[4 : 4 + size])
            buf = buf[4 + size :]
            body = encoder.encode(msg)
            out += len(body).to_bytes(4, "big") + body
        if out:
            sock.sendall(out)


async def raw_echo(n: int, concurrency: int) -> tuple[list[float], float]:
    """Per-call latencies (one caller) or total seconds for n calls (pipelined)."""
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        _raw_echo_server(child)
    child.close()
    reader, writer = await asyncio.open_connection(sock=parent)
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder()

    async def one(i: int) -> None:
        body = encoder.encode({"id": i, "x": i})
        writer.write(len(body).to_bytes(4, "big") + body)
        header = await reader.readexactly(4)
        decoder.decode(await reader.readexactly(int.from_bytes(header, "big")))

    latencies: list[float] = []
    start = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            t = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - t)
    else:
        # pipelined: all requests written, then all replies read
        for i in range(n):
            body = encoder.encode({"id": i, "x": i})
            writer.write(len(body).to_bytes(4, "big") + body)
        for _ in range(n):
            header = await reader.readexactly(4)
            decoder.decode(await reader.readexactly(int.from_bytes(header, "big")))
    total = time.perf_counter() - start
    writer.close()
    os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(os.waitpid, pid, 0)
    return latencies, total


# --------------------------------------------------------------------------- plugbay


def _plugin_dir() -> Path:
    directory = WORK / "sandbox-plugins" / "echo"
    shutil.rmtree(directory.parent, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "plugin.toml").write_text(
        'id = "bench.echo"\nversion = "1.0.0"\ntype = "utility"\nentry = "echo:Echo"\n'
        'isolation = "process"\n'
    )
    (directory / "echo.py").write_text(ECHO)
    return directory.parent


async def plugbay_figures(n: int) -> dict[str, object]:
    from plugbay.runtime.host import Host

    out: dict[str, object] = {}
    async with Host(_plugin_dir(), state_dir=WORK / "sandbox-state", entry_points=False) as host:
        call = host.call
        for i in range(200):  # warm up
            await call("bench.echo", "echo", x=i)
        latencies = []
        for i in range(n):
            t = time.perf_counter()
            await call("bench.echo", "echo", x=i)
            latencies.append(time.perf_counter() - t)
        out["latencies"] = latencies

        async def caller(k: int) -> None:
            for i in range(n // 16):
                await call("bench.echo", "echo", x=i + k)

        t = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(16)))
        out["throughput_seconds"] = time.perf_counter() - t
        out["throughput_calls"] = 16 * (n // 16)
        handle = host.plugin("bench.echo").handle
        pid = getattr(handle, "pid", None)
        await asyncio.sleep(0.5)
        out["uss"] = _uss(int(pid)) if pid else float("nan")

        # worker start: from asking the zygote to the plugin initialized, every layer applied
        backend = host.manager.backends["process"]
        manifest = host.registry.get("bench.echo")
        rec = host.plugin("bench.echo")
        assert rec.placement is not None and rec.placement.sandboxed
        data_dir = host.manager.settings.data_root / "bench.echo"
        starts = []
        for _ in range(30):
            t = time.perf_counter()
            worker = await backend.start(manifest, rec.placement, data_dir)  # type: ignore[call-arg]
            ctx = host.manager._context_for(manifest, {}, rec.metrics, "process", rec.placement)  # type: ignore[arg-type]
            await worker.initialize(ctx, 30)
            starts.append(time.perf_counter() - t)
            await worker.cleanup(5)
            worker.release()
            # the next start is measured alone, not beside this worker's teardown
            # (its reaper removes its cgroup in a thread)
            if worker._reaper is not None:
                await worker._reaper
        out["starts"] = starts
    return out


def fork_start(runs: int = 30) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - t)
    return times


def fresh_python_start(runs: int = 15) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return times


def idle_memory() -> tuple[int, int]:
    """USS of a forked idle copy of this process, and of a fresh idle python."""
    pid = os.fork()
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    time.sleep(0.5)
    forked = _uss(pid)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    fresh = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    time.sleep(1.0)
    fresh_uss = _uss(fresh.pid)
    fresh.kill()
    fresh.wait()
    return forked, fresh_uss


def run() -> int:
    n = 4000
    raw_lat, _ = asyncio.run(raw_echo(n, 1))
    _, raw_pipelined = asyncio.run(raw_echo(n, 16))
    ours = asyncio.run(plugbay_figures(n))
    lat = ours["latencies"]
    assert isinstance(lat, list)
    starts = ours["starts"]
    assert isinstance(starts, list)
    forks = fork_start()
    fresh = fresh_python_start()
    forked_uss, fresh_uss = idle_memory()
    raw_rate = n / raw_pipelined
    our_rate = float(ours["throughput_calls"]) / float(ours["throughput_seconds"])  # type: ignore[arg-type]
    uss = float(ours["uss"])  # type: ignore[arg-type]
    figures = [
        Figure(
            "sandboxed call round trip p50",
            statistics.median(lat),
            "raw msgspec echo over a socketpair p50",
            statistics.median(raw_lat),
            "p50 within 2× of the floor",
            statistics.median(lat) <= 2 * statistics.median(raw_lat),
        ),
        Figure(
            "sandboxed call round trip p99",
            _pct(lat, 0.99),
            "raw msgspec echo p99",
            _pct(raw_lat, 0.99),
            "(reported)",
            None,
        ),
        Figure(
            "throughput, 16 concurrent callers to one sandboxed plugin",
            our_rate,
            "raw echo, pipelined",
            raw_rate,
            "≥ 50% of the floor",
            our_rate >= 0.5 * raw_rate,
            unit="calls/s",
        ),
        Figure(
            "worker start (zygote fork → plugin initialized) p50",
            statistics.median(starts),
            "os.fork() of the host p50",
            statistics.median(forks),
            "≤ 25 ms p50",
            statistics.median(starts) <= 0.025,
        ),
        Figure(
            "worker start p50",
            statistics.median(starts),
            "subprocess `python -c pass` p50",
            statistics.median(fresh),
            "(reported)",
            None,
        ),
        Figure(
            "idle worker memory (USS)",
            uss / 2**20,
            "forked idle copy of the host",
            forked_uss / 2**20,
            "≤ 8 MB",
            uss <= 8 * 2**20,
            unit="MiB",
        ),
        Figure(
            "idle worker memory (USS)",
            uss / 2**20,
            "fresh idle python",
            fresh_uss / 2**20,
            "(reported)",
            None,
            unit="MiB",
        ),
    ]
    print_figures("sandbox (sandboxed workers: every kernel layer applied)", figures)
    return sum(1 for f in figures if f.passed is False)
