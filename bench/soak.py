"""Fault injection: a real ``plugbay run`` under faults while callers keep writing.

``make soak`` (or ``python -m bench.soak``). For ``SOAK_SECONDS`` (default 240, at
most 450, so the whole run stays under 10 minutes) 16 HTTP callers write unique keys into ``SOAK_PLUGINS`` (default 8)
sandboxed plugins that keep their keys in their data directory, while faults are
injected, each kind at its own pace:

* worker ``kill -9`` and ``SIGSTOP`` (the heartbeat must notice and replace it);
* host ``kill -9``, then a new ``plugbay run`` on the same state directory;
* disk full: the state directory is a small tmpfs this run mounts (else a
  loop-mounted image it makes; else that fault is skipped and says so), filled up
  for a moment, then freed;
* a corrupted database page: the host is killed, one page of its SQLite file is
  overwritten, and it is started again (then the file is put back);
* a hostile manifest dropped into the plugin directory (the host runs ``--watch``).

It reports host crashes (goal 0), acknowledged writes lost (goal 0), faults
without a clear event (goal 0: a crash in the history, a sweep reported at
start, an error naming the full disk or the damaged database, the watcher naming
the bad manifest) and the time to serve again after each kind of fault (p50 /
p99), beside anchors measured in the same run. Only processes and mounts it
started are touched, by pid and path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench._report import Figure, fmt_time, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("SOAK_DIR", ROOT / "bench" / ".work" / "soak"))
#: the fault window; the whole run takes about 1.5 min more (start, settle, final check)
SECONDS = min(450.0, float(os.environ.get("SOAK_SECONDS", "240")))
PLUGINS = int(os.environ.get("SOAK_PLUGINS", "28"))
WRITERS = 16
DISK_MB = 48
#: seconds between two faults of each kind in one lane (jittered ±30 %), and lanes
PACE = {
    "worker kill -9": 0.3,
    "worker SIGSTOP": 0.3,
    "hostile manifest": 0.2,
    "disk full": 20.0,
    "host kill -9": 80.0,
    "corrupted database page": 200.0,
}
#: worker faults run in lanes at once, each lane on its own share of the plugins
LANES = {"worker kill -9": 5, "worker SIGSTOP": 4, "hostile manifest": 3}
#: how long a fault may take to show a clear event
CLEAR_WITHIN = 15.0

PLUGIN = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context) -> None:
        await super().initialize(context)
        self.path = context.environment.data_dir / "keys.txt"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def cleanup(self) -> None:
        os.close(self.fd)

    @command
    def put(self, key: str) -> str:
        # one write per record, a newline first: a record cut short by a full disk
        # never glues itself to the next one
        record = ("\\n" + key + " " * 240 + "\\n").encode()
        if os.write(self.fd, record) != len(record):
            raise OSError(28, "short write: the disk is full")
        return key

    @command
    def keys(self) -> list[str]:
        return self.path.read_text().split()
"""

HOSTILE = [
    "id = [unclosed\n",
    "id = 'x'\nversion = '1'\n" + "[a]\n" * 3 + "x = " + "[" * 500 + "]" * 500 + "\n",
    "".join(f"[{'t.' * n}t]\n" for n in range(1, 400)),
    'id = "../../etc"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n',
    'id = "soak.hostile"\nversion = "not a version"\ntype = "utility"\nentry = "main:P"\n',
    'id = "soak.hostile"\nversion = "1.0.0"\ntype = "utility"\nentry = "nowhere:P"\n',
    'id = "soak.hostile"\nversion = "1.0.0"\ntype = 42\nentry = "main:P"\n',
    "\x00\xff\xfe binary \x00" * 100,
    'id = "' + "x" * 1_000_000 + '"\n',
    'id = "soak.hostile"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
    'dependencies = { "soak.hostile" = ">=1" }\n',
]


@dataclass
class Fault:
    kind: str
    at: float  # monotonic
    wall: float
    target: str | None = None
    clear: bool | None = None
    served_again: float | None = None  # seconds
    note: str = ""


@dataclass
class HostProcess:
    proc: subprocess.Popen[bytes]
    generation: int
    url: str = ""
    started: float = field(default_factory=time.monotonic)


class Soak:
    def __init__(self) -> None:
        self.plugins_dir = WORK / "plugins"
        self.mount = WORK / "fs"
        self.state = self.mount / "state"
        self.logs = WORK / "logs"
        self.ids = [f"soak.keys{n:02d}" for n in range(PLUGINS)]
        self.acked: dict[str, set[str]] = defaultdict(set)
        #: plugin → (call started, acknowledged) of every acknowledged write
        self.acks: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.failures: list[str] = []
        self.faults: list[Fault] = []
        self.host: HostProcess | None = None
        self.host_crashes = 0
        self.generation = 0
        self.mounted: str | None = None
        self.disk_note = ""
        self.token = ""
        self.stop = asyncio.Event()
        self.writers_stop = asyncio.Event()
        self.host_ready = asyncio.Event()
        self.cold_start = 0.0
        self.plugin_load = 0.0
        self.hostile_n = itertools.count()
        self.measuring: set[asyncio.Future[None]] = set()
        self._gate: asyncio.Condition | None = None
        self._whole = False
        self._others = 0
        self._waiting = 0
        self._api_client: httpx.AsyncClient | None = None
        self.mount_kind = "the work disk"

    # ------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        shutil.rmtree(WORK, ignore_errors=True)
        self.plugins_dir.mkdir(parents=True)
        self.logs.mkdir()
        self.mount.mkdir()
        for pid in self.ids:
            directory = self.plugins_dir / pid
            directory.mkdir()
            (directory / "plugin.toml").write_text(
                f'id = "{pid}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
            )
            (directory / "main.py").write_text(PLUGIN)
        self.mounted = self._mount()
        self.mount_kind = self.mounted or self.mount_kind
        self.state.mkdir()

    def _mount(self) -> str | None:
        """A small file system for the state directory: tmpfs, else a loop image."""
        tmpfs = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(self.mount)],
            capture_output=True, text=True,
        )  # fmt: skip
        if tmpfs.returncode == 0:
            return "tmpfs"
        image = WORK / "state.img"
        try:
            with image.open("wb") as f:
                f.truncate(DISK_MB << 20)
            subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
            subprocess.run(
                ["mount", "-o", "loop", str(image), str(self.mount)],
                check=True,
                capture_output=True,
            )
            return "loop-mounted ext4 image"
        except (OSError, subprocess.CalledProcessError) as exc:
            self.disk_note = (
                f"no small file system could be mounted ({tmpfs.stderr.strip()}; {exc})"
            )
            return None

    def unmount(self) -> None:
        if self.mounted is not None:
            subprocess.run(["umount", str(self.mount)], capture_output=True)
            self.mounted = None

    # ------------------------------------------------------------------ the host

    def _out(self, generation: int) -> Path:
        return self.logs / f"host-{generation}.out"

    def _err(self, generation: int) -> Path:
        return self.logs / f"host-{generation}.err"

    async def start_host(self) -> HostProcess:
        self.generation += 1
        g = self.generation
        env = {**os.environ, "COLUMNS": "240", "NO_COLOR": "1", "TERM": "dumb"}
        with self._out(g).open("wb") as out, self._err(g).open("wb") as err:
            proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [sys.executable, "-m", "plugbay.cli", "run", "--plugins", str(self.plugins_dir),
                 "--state", str(self.state), "--http", "127.0.0.1:0", "--no-metrics", "--watch"],
                cwd=WORK, stdout=out, stderr=err, env=env,
            )  # fmt: skip
        host = HostProcess(proc, g)
        self.host = host
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    return host  # refused or died at start: the caller looks at why
                try:
                    announced = json.loads((self.state / "host.json").read_text())
                except (OSError, ValueError):
                    announced = {}
                if announced.get("pid") == proc.pid and announced.get("http"):
                    host.url = str(announced["http"])
                    self.token = (self.state / "api-token").read_text().strip()
                    try:
                        ready = await http.get(
                            host.url + "/readyz", headers={"Authorization": f"Bearer {self.token}"}
                        )
                        if ready.status_code == 200:
                            self.host_ready.set()
                            return host
                    except httpx.HTTPError:
                        pass
                await asyncio.sleep(0.02)
        raise RuntimeError("the host did not become ready in 120 s: " + self.output(g))

    def output(self, generation: int) -> str:
        try:
            return self._out(generation).read_text(errors="replace") + self._err(
                generation
            ).read_text(errors="replace")
        except OSError:
            return ""

    async def kill_host(self) -> None:
        host = self.host
        self.host_ready.clear()
        if host is not None and host.proc.poll() is None:
            host.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(host.proc.wait)

    async def stop_host(self) -> int:
        host = self.host
        self.host_ready.clear()
        if host is None or host.proc.poll() is not None:
            return host.proc.returncode if host is not None else 0
        host.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(asyncio.to_thread(host.proc.wait), 60)
        except TimeoutError:
            host.proc.kill()
            return -9

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        host = self.host
        if host is None or not host.url:
            return None
        if self._api_client is None or str(self._api_client.base_url).rstrip("/") != host.url:
            if self._api_client is not None:
                await self._api_client.aclose()
            self._api_client = httpx.AsyncClient(base_url=host.url, timeout=10)
        try:
            return await self._api_client.request(method, path, headers=self.headers(), **kwargs)
        except httpx.HTTPError:
            return None

    # ------------------------------------------------------------------ callers

    async def writer(self, n: int) -> None:
        # each caller writes to every plugin in turn, starting at its own
        turn = itertools.cycle(self.ids[n % len(self.ids) :] + self.ids[: n % len(self.ids)])
        counter = itertools.count()
        client: httpx.AsyncClient | None = None
        url = ""
        try:
            while not self.writers_stop.is_set():
                host = self.host
                if host is None or not host.url or not self.host_ready.is_set():
                    await asyncio.sleep(0.02)
                    continue
                if client is None or url != host.url:
                    if client is not None:
                        await client.aclose()
                    url = host.url
                    client = httpx.AsyncClient(base_url=url, timeout=15, headers=self.headers())
                pid = next(turn)
                key = f"w{n}-{next(counter)}"
                started = time.monotonic()
                try:
                    response = await client.post(
                        f"/api/v1/plugins/{pid}/commands/put", json={"key": key}
                    )
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}")
                    await asyncio.sleep(0.05)
                    continue
                if response.status_code == 200 and response.json().get("result") == key:
                    self.acked[pid].add(key)
                    self.acks[pid].append((started, time.monotonic()))
                else:
                    self.failures.append(response.text[:300])
                    await asyncio.sleep(0.05)
        finally:
            if client is not None:
                await client.aclose()

    def served_after(self, t0: float, plugin: str | None = None) -> float | None:
        """Seconds from ``t0`` to the first write acknowledged that started after it."""
        plugins = [plugin] if plugin else self.ids
        firsts = [done for p in plugins for started, done in reversed(self.acks[p]) if started > t0]
        return min(firsts) - t0 if firsts else None

    async def wait_served(
        self, t0: float, plugin: str | None = None, limit: float = 60
    ) -> float | None:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            served = self.served_after(t0, plugin)
            if served is not None:
                return served
            await self.keep_alive()
            await asyncio.sleep(0.02)
        return None

    # ------------------------------------------------------------------ faults

    async def keep_alive(self) -> None:
        """A host that died by itself is a crash: counted, then replaced."""
        host = self.host
        if host is not None and host.proc.poll() is not None and self.host_ready.is_set():
            self.host_crashes += 1
            print(
                f"  host crashed (exit {host.proc.returncode}):\n{self.output(host.generation)[-2000:]}"
            )
            self.host_ready.clear()
            await self.start_host()

    async def crash_events_since(self, pid: str, wall: float) -> list[dict[str, Any]]:
        response = await self.api("GET", "/api/v1/history", params={"plugin": pid, "limit": 10})
        if response is None or response.status_code != 200:
            return []
        return [
            e
            for e in response.json()
            if e["time"] >= wall - 0.01 and e["action"] in ("crash", "disable")
        ]

    async def worker_pid(self, pid: str) -> int | None:
        response = await self.api("GET", f"/api/v1/plugins/{pid}")
        if response is None or response.status_code != 200:
            return None
        info = response.json()
        if info.get("state") == "disabled":  # too many crashes: the operator brings it back
            await self.api("POST", f"/api/v1/plugins/{pid}/enable")
            return None
        usage = info.get("usage") or {}
        return int(usage["pid"]) if info.get("state") == "active" and usage.get("pid") else None

    async def worker_fault(self, kind: str, pid: str) -> Fault | None:
        worker = await self.worker_pid(pid)
        if worker is None or not await self.settled(pid, worker):
            return None
        fault = Fault(kind, time.monotonic(), time.time(), pid)
        try:
            os.kill(worker, signal.SIGKILL if kind == "worker kill -9" else signal.SIGSTOP)
        except ProcessLookupError:
            return None
        end = time.monotonic() + CLEAR_WITHIN
        while time.monotonic() < end and not fault.clear:
            fault.clear = bool(await self.crash_events_since(pid, fault.wall))
            await asyncio.sleep(0.05)
        if not fault.clear:
            response = await self.api("GET", "/api/v1/history", params={"plugin": pid, "limit": 4})
            seen = response.json() if response is not None and response.status_code == 200 else []
            fault.note = "history: " + ", ".join(f"{e['action']} {e['result']}" for e in seen)
        # measured meanwhile: the lane goes on with its next plugin
        task = asyncio.ensure_future(self.measure(fault))
        self.measuring.add(task)
        task.add_done_callback(self.measuring.discard)
        return fault

    async def settled(self, pid: str, worker: int) -> bool:
        """The plugin serves from a live worker whose start is its newest event (a worker
        an earlier fault already hit, not yet replaced, is no target for a new fault)."""
        try:
            if psutil.Process(worker).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_STOPPED):
                return False
        except psutil.NoSuchProcess:
            return False
        response = await self.api("GET", "/api/v1/history", params={"plugin": pid, "limit": 1})
        if response is None or response.status_code != 200 or not response.json():
            return False
        return str(response.json()[0]["action"]) in ("load", "enable")

    async def measure(self, fault: Fault) -> None:
        """Time until the plugin took a write again; a plugin the restart policy disabled
        (too many crashes in a minute) is enabled again, as an operator would."""
        end = time.monotonic() + 60
        while time.monotonic() < end:
            fault.served_again = self.served_after(fault.at, fault.target)
            if fault.served_again is not None:
                return
            if fault.target is not None:
                response = await self.api("GET", f"/api/v1/plugins/{fault.target}")
                if (
                    response is not None
                    and response.status_code == 200
                    and response.json().get("state") == "disabled"
                ):
                    await self.api("POST", f"/api/v1/plugins/{fault.target}/enable")
            await asyncio.sleep(0.1)

    async def host_fault(self) -> Fault:
        fault = Fault("host kill -9", time.monotonic(), time.time())
        await self.kill_host()
        host = await self.start_host()
        said = self.output(host.generation)
        fault.clear = "left by an earlier host" in said
        fault.served_again = await self.wait_served(fault.at)
        return fault

    async def disk_fault(self) -> Fault | None:
        if self.mounted is None:
            return None
        fault = Fault("disk full", time.monotonic(), time.time())
        filler = self.mount / "filler"
        seen_failures = len(self.failures)
        host = self.host
        seen_output = len(self.output(host.generation)) if host is not None else 0
        chunk = b"\0" * (1 << 20)
        with filler.open("wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(chunk)
                f.flush()
        with contextlib.suppress(OSError), filler.open("ab") as f:  # the last bytes
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        # an operator's change meanwhile: refused with a clear error, or applied
        target = random.choice(self.ids)
        response = await self.api(
            "POST", f"/api/v1/plugins/{target}/disable", json={"reason": "soak: full disk"}
        )
        if response is not None and response.status_code >= 400:
            self.failures.append(f"disable during a full disk: {response.text[:300]}")
        # the callers keep writing into the full disk until a write needs a new page
        # (appends fill the last one first) or 6 s passed
        held = time.monotonic() + 6
        while time.monotonic() < held and len(self.failures) == seen_failures:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        gone = time.monotonic()
        filler.unlink()
        await self.keep_alive()
        said = " ".join(self.failures[seen_failures:])
        if host is not None:
            said += self.output(host.generation)[seen_output:]
        fault.clear = any(w in said for w in ("No space left", "disk is full", "disk full"))
        if not fault.clear:
            fault.note = f"{len(self.failures) - seen_failures} failed calls, none naming it"
        await self.api("POST", f"/api/v1/plugins/{target}/enable")
        served = await self.wait_served(gone)
        fault.served_again = served
        return fault

    async def corruption_fault(self) -> Fault:
        fault = Fault("corrupted database page", time.monotonic(), time.time())
        await self.kill_host()
        db = next(
            iter(sorted(self.state.glob("*.db")) + sorted(self.state.glob("*.sqlite*"))), None
        )
        backup = WORK / "db-backup"
        shutil.rmtree(backup, ignore_errors=True)
        backup.mkdir()
        if db is None:
            fault.clear, fault.note = False, "no database file found"
            await self.start_host()
            return fault
        kept = [p for p in self.state.iterdir() if p.name.startswith(db.name)]
        for p in kept:
            shutil.copy2(p, backup / p.name)
        pages = max(2, db.stat().st_size // 4096)
        page = random.randrange(1, pages)
        with db.open("r+b") as f:
            f.seek(page * 4096)
            f.write(os.urandom(4096))
        host = await self.start_host()
        said = self.output(host.generation).lower()
        fault.clear = any(w in said for w in ("malformed", "corrupt", "damaged", "integrity"))
        fault.note = f"page {page} of {pages}; the host {'refused to start' if host.proc.poll() is not None else 'started'}"
        # the operator restores the database and starts again
        if host.proc.poll() is None:
            await self.stop_host()
        for p in kept:
            shutil.copy2(backup / p.name, p)
        await self.start_host()
        fault.served_again = await self.wait_served(fault.at)
        return fault

    async def manifest_fault(self) -> Fault:
        n = next(self.hostile_n)
        name = f"hostile-{n}"
        directory = self.plugins_dir / name
        directory.mkdir()
        fault = Fault("hostile manifest", time.monotonic(), time.time(), name)
        (directory / "plugin.toml").write_text(HOSTILE[n % len(HOSTILE)], errors="surrogateescape")
        host = self.host
        end = time.monotonic() + CLEAR_WITHIN
        while time.monotonic() < end and host is not None:
            if name in self.output(host.generation):
                fault.clear = True
                break
            await self.keep_alive()
            await asyncio.sleep(0.05)
        shutil.rmtree(directory, ignore_errors=True)
        fault.served_again = await self.wait_served(fault.at)
        return fault

    async def inject(self, kind: str, lane: int = 0) -> None:
        workers = {k: n for k, n in LANES.items() if k.startswith("worker")}
        lanes = sum(workers.values())
        first = (
            sum(list(workers.values())[: list(workers).index(kind)]) + lane
            if kind in workers
            else 0
        )
        mine = itertools.cycle(self.ids[first::lanes] or self.ids)
        while not self.stop.is_set():
            await asyncio.sleep(PACE[kind] * random.uniform(0.7, 1.3))
            if self.stop.is_set():
                return
            async with self.exclusive(kind):
                if not self.host_ready.is_set() or self.stop.is_set():
                    continue
                if kind in ("worker kill -9", "worker SIGSTOP"):
                    fault = await self.worker_fault(kind, next(mine))
                elif kind == "host kill -9":
                    fault = await self.host_fault()
                elif kind == "disk full":
                    fault = await self.disk_fault()
                elif kind == "corrupted database page":
                    fault = await self.corruption_fault()
                else:
                    fault = await self.manifest_fault()
            if fault is not None:
                self.faults.append(fault)

    @contextlib.asynccontextmanager
    async def exclusive(self, kind: str) -> Any:
        """Faults on the whole host (kill, disk, database) wait for the others in progress
        and hold new ones back; worker and manifest faults run side by side."""
        if self._gate is None:
            self._gate = asyncio.Condition()
        gate = self._gate
        whole = kind in ("host kill -9", "corrupted database page")
        async with gate:
            if whole:  # waiting, it holds new worker and manifest faults back (no starving)
                self._waiting += 1
                await gate.wait_for(lambda: not self._whole and self._others == 0)
                self._waiting -= 1
                self._whole = True
            else:
                await gate.wait_for(lambda: not self._whole and not self._waiting)
                self._others += 1
        try:
            yield
        finally:
            async with gate:
                if whole:
                    self._whole = False
                else:
                    self._others -= 1
                gate.notify_all()

    # ------------------------------------------------------------------ the run

    async def run(self) -> dict[str, Any]:
        self.prepare()
        try:
            begun = time.monotonic()
            host = await self.start_host()
            self.cold_start = time.monotonic() - begun
            if host.proc.poll() is not None:
                raise RuntimeError("the host did not start: " + self.output(host.generation))
            loads = (await self.api("GET", "/api/v1/plugins")).json()  # type: ignore[union-attr]
            self.plugin_load = statistics.median(r["load_seconds"] or 0 for r in loads)
            writers = [asyncio.ensure_future(self.writer(n)) for n in range(WRITERS)]
            injectors = [
                asyncio.ensure_future(self.inject(kind, lane))
                for kind in PACE
                for lane in range(LANES.get(kind, 1))
            ]
            end = time.monotonic() + SECONDS
            while time.monotonic() < end:
                await self.keep_alive()
                await asyncio.sleep(0.1)
            self.stop.set()  # no new fault; the callers write on while the last ones settle
            await asyncio.gather(*injectors)
            if self.measuring:
                await asyncio.wait(self.measuring, timeout=10)
            self.writers_stop.set()
            await asyncio.gather(*writers)
            await self.keep_alive()
            # what the plugins kept, read from a freshly started host
            code = await self.stop_host()
            await self.start_host()
            lost: dict[str, int] = {}
            for pid in self.ids:
                response = await self.api("POST", f"/api/v1/plugins/{pid}/commands/keys", json={})
                kept = (
                    set(response.json()["result"])
                    if response is not None and response.status_code == 200
                    else set()
                )
                lost[pid] = len(self.acked[pid] - kept)
            final = await self.stop_host()
            leftovers = self.output(self.generation)
            return {"lost": lost, "sigterm_exit": (code, final), "leftovers": leftovers}
        finally:
            if self._api_client is not None:
                await self._api_client.aclose()
            if self.host is not None and self.host.proc.poll() is None:
                self.host.proc.kill()
            self.unmount()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run() -> int:
    soak = Soak()
    started = time.monotonic()
    result = asyncio.run(soak.run())
    took = time.monotonic() - started
    faults = soak.faults
    acked = sum(len(v) for v in soak.acked.values())
    lost = sum(result["lost"].values())
    unclear = [f for f in faults if not f.clear]
    print(
        f"\nfault-injection run: {took:.0f} s, {len(faults)} faults, {acked:,} writes acknowledged, "
        f"{len(soak.failures):,} calls failed meanwhile (refused or cut by a fault, not acknowledged); "
        f"state directory on {soak.mount_kind}" + (f" ({soak.disk_note})" if soak.disk_note else "")
    )
    figures = [
        Figure("host crashes (not injected)", soak.host_crashes, "host kills injected",
               sum(1 for f in faults if f.kind in ("host kill -9", "corrupted database page")),
               "0", soak.host_crashes == 0, unit="crashes"),
        Figure("acknowledged writes lost", lost, "writes acknowledged", acked, "0",
               lost == 0, unit="writes"),
        Figure("faults without a clear event", len(unclear), "faults injected", len(faults),
               "0", not unclear, unit="faults"),
        Figure("faults injected", len(faults), "the run's seconds", took, "≥ 1,000",
               len(faults) >= 1000, unit="faults"),
    ]  # fmt: skip
    by_kind: dict[str, list[Fault]] = defaultdict(list)
    for f in faults:
        by_kind[f.kind].append(f)
    for kind, group in by_kind.items():
        times = [f.served_again for f in group if f.served_again is not None]
        anchor = (
            soak.cold_start
            if kind in ("host kill -9", "corrupted database page")
            else soak.plugin_load
        )
        anchor_name = (
            "the first host's cold start" if anchor is soak.cold_start else "one plugin's load"
        )
        never = len(group) - len(times)
        figures.append(Figure(
            f"{kind}: time to serve again, p50 (of {len(group)}; {sum(1 for f in group if f.clear)} clear)",
            _pct(times, 0.5), anchor_name, anchor, "reported", None,
            note=f"p99 {fmt_time(_pct(times, 0.99))}" + (f"; {never} never served again in 60 s" if never else "")
            + (f"; unclear e.g. {next((f.note for f in group if not f.clear and f.note), '')}" if any(not f.clear for f in group) else ""),
        ))  # fmt: skip
    print_figures("fault injection (make soak)", figures)
    code, final = result["sigterm_exit"]
    print(f"  SIGTERM exits: {code}, {final} (0 expected)")
    return sum(1 for f in figures if f.passed is False)


if __name__ == "__main__":
    raise SystemExit(run())
