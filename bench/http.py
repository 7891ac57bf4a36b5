"""The API under load: a trivial inline command called over HTTP, against bare FastAPI.

Two servers, each a process of its own with the same uvicorn settings on
127.0.0.1: plugbay's API (token check, body limit, routing, parameter checks,
the host's call path, the JSON result) and a bare FastAPI endpoint answering
the same POST with the same JSON. Debian's wrk loads each in turn (one
thread, 16 connections), alternating, best of three; requests/s and p99 are
printed side by side. Goal: the API keeps ≥ 70% of the bare endpoint's
throughput. Without wrk (``make bench`` installs it) an httpx client is used,
which is slower than the servers and so understates the gap; that is said.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._report import Figure, fmt_time, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
BODY = '{"a": 2}'
ANSWER = {"result": 3}
SECONDS = 4
CONNECTIONS = 16

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b
"""


# --------------------------------------------------------------------------- the servers


def _uvicorn_config(app: Any) -> Any:
    import uvicorn

    # the settings plugbay's HttpServer uses, so only the app differs
    return uvicorn.Config(
        app, lifespan="off", access_log=False, log_level="warning", server_header=False,
        proxy_headers=False, timeout_keep_alive=30,
    )  # fmt: skip


async def _serve_api(port: int) -> None:
    from plugbay.runtime.host import Host
    from plugbay.web import HttpServer, create_app
    from plugbay.web.token import TokenFile

    root = WORK / "http-plugins" / "calc"
    root.mkdir(parents=True, exist_ok=True)
    (root / "plugin.toml").write_text(
        'id = "bench.calc"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
    )
    (root / "main.py").write_text(CODE)
    state = Path(tempfile.mkdtemp(prefix="plugbay-bench-"))
    async with Host(
        root.parent, state_dir=state, entry_points=False, inline=["bench.calc"]
    ) as host:
        tokens = TokenFile(state)
        token, _ = tokens.ensure()
        server = HttpServer(create_app(host, tokens=tokens), "127.0.0.1", port)
        await server.start()
        print(json.dumps({"token": token}), flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop()
    shutil.rmtree(state, ignore_errors=True)


async def _serve_bare(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/bare")
    async def bare() -> dict[str, int]:
        return {"result": 3}

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as HttpServer
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(_uvicorn_config(app))
    print(json.dumps({"token": ""}), flush=True)
    await server.serve(sockets=[sock])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.http", "serve", kind, str(self.port)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {kind} server did not start")
        self.token = json.loads(line)["token"]
        path = "/api/v1/plugins/bench.calc/commands/add" if kind == "api" else "/bare"
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.headers = {"Content-Type": "application/json"}
        if self.token:
            self.headers["Authorization"] = f"Bearer {self.token}"

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM if self.kind == "api" else signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- the load


def _check(server: Server) -> None:
    import httpx

    r = httpx.post(server.url, content=BODY, headers=server.headers)
    if r.status_code != 200 or r.json() != ANSWER:
        raise RuntimeError(f"{server.kind} answered {r.status_code} {r.text[:200]}")


def _wrk(server: Server) -> tuple[float, float]:
    """(requests/s, p99 seconds) from wrk, one thread, CONNECTIONS connections."""
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(BODY)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in server.headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", script,
             server.url],
            capture_output=True, text=True, timeout=SECONDS + 30, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script)
    if "Non-2xx" in out:
        raise RuntimeError(f"{server.kind}: wrk saw errors:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rate, float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def _httpx(server: Server) -> tuple[float, float]:
    import httpx

    async def go() -> tuple[float, float]:
        latencies: list[float] = []
        deadline = time.perf_counter() + SECONDS
        limits = httpx.Limits(max_connections=CONNECTIONS)
        async with httpx.AsyncClient(headers=server.headers, limits=limits) as client:

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    t = time.perf_counter()
                    r = await client.post(server.url, content=BODY)
                    latencies.append(time.perf_counter() - t)
                    assert r.status_code == 200

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
            elapsed = time.perf_counter() - start
        latencies.sort()
        return len(latencies) / elapsed, latencies[int(0.99 * (len(latencies) - 1))]

    return asyncio.run(go())


def run() -> int:
    load = _wrk if shutil.which("wrk") else _httpx
    servers = {kind: Server(kind) for kind in ("api", "bare")}
    try:
        for server in servers.values():
            _check(server)
            load(server)  # warm-up
        best: dict[str, tuple[float, float]] = {}
        for _ in range(3):  # alternate, so both see the same machine
            for kind, server in servers.items():
                rate, p99 = load(server)
                if kind not in best or rate > best[kind][0]:
                    best[kind] = (rate, p99)
    finally:
        for server in servers.values():
            server.close()
    (api_rate, api_p99), (bare_rate, bare_p99) = best["api"], best["bare"]
    tool = (
        f"wrk, 1 thread, {CONNECTIONS} connections, {SECONDS} s, best of 3"
        if load is _wrk
        else "httpx client (wrk not installed: client-bound, understates the gap)"
    )
    figures = [
        Figure(
            "API: POST a trivial inline command (token, limits, checks, call path)",
            api_rate,
            "bare FastAPI endpoint answering the same POST with the same JSON",
            bare_rate,
            "≥ 70% of the bare endpoint's requests/s",
            api_rate >= 0.70 * bare_rate,
            unit="req/s",
            note=f"{tool}; p99 {fmt_time(api_p99)} against {fmt_time(bare_p99)} "
            f"({api_p99 / bare_p99:.2f}×)",
        ),
    ]
    print_figures("http (the host's API under load, loopback)", figures)
    return sum(1 for f in figures if f.passed is False)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve = _serve_api if sys.argv[2] == "api" else _serve_bare
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(int(sys.argv[3])))
    else:
        raise SystemExit(run())
