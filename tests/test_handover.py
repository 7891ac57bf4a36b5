"""Nothing acknowledged is lost by a swap (plugbay.runtime.swap).

16 callers write unique keys while a plugin is reloaded, upgraded, rolled back or
switched back after a failed probation; afterwards every key a call acknowledged
must still be there, and no call may have failed. Two kinds of plugin: one keeping
its keys in memory and handing them over with export_state() / import_state(), one
keeping them in its data directory (read at initialize, written through on each put).
Both on the inline backend and in sandboxed workers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay import PluginReloadError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

PID = "acme.keys"
CALLERS = 16

MEMORY = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    def __init__(self) -> None:
        self.keys: list[str] = []

    def export_state(self) -> list[str]:
        return list(self.keys)

    def import_state(self, state: list[str]) -> None:
        self.keys = list(state)

    @command
    def put(self, key: str) -> int:
        self.keys.append(key)
        return len(self.keys)

    @command
    def all(self) -> list[str]:
        return list(self.keys)

    @command
    def label(self) -> str:
        return "{label}"
{extra}
"""

# the README's other way: the data directory is the truth; read once at initialize,
# every put written through before it is acknowledged
DISK = """
import threading
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context) -> None:
        await super().initialize(context)
        self.path = context.environment.data_dir / "keys.txt"
        self.lock = threading.Lock()
        self.keys = self.path.read_text().split() if self.path.exists() else []
        self.out = open(self.path, "a")

    async def cleanup(self) -> None:
        self.out.close()

    @command
    def put(self, key: str) -> int:
        with self.lock:
            self.out.write(key + "\\n")
            self.out.flush()
            self.keys.append(key)
            return len(self.keys)

    @command
    def all(self) -> list[str]:
        return list(self.keys)

    @command
    def label(self) -> str:
        return "{label}"
{extra}
"""

KINDS = {"memory": MEMORY, "disk": DISK}


def code(kind: str, label: str, extra: str = "") -> str:
    return KINDS[kind].format(label=label, extra=extra)


class Writers:
    """``CALLERS`` tasks putting unique keys until stopped; what was acknowledged, what failed."""

    def __init__(self, host: Host, prefix: str = "") -> None:
        self.host = host
        self.prefix = prefix
        self.acked: list[str] = []
        self.failed: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _write(self, n: int) -> None:
        for i in itertools.count():
            if self._stop.is_set():
                return
            key = f"{self.prefix}c{n}-{i}"
            try:
                await self.host.call(PID, "put", key=key)
            except Exception as exc:
                self.failed.append(f"{key}: {type(exc).__name__}: {exc}")
            else:
                self.acked.append(key)
            await asyncio.sleep(0)

    async def __aenter__(self) -> Writers:
        self._tasks = [asyncio.ensure_future(self._write(n)) for n in range(CALLERS)]
        await self.some()
        return self

    async def some(self, more: int = CALLERS) -> None:
        """Wait until at least ``more`` further writes were acknowledged."""
        target = len(self.acked) + more
        async with asyncio.timeout(30):
            while len(self.acked) < target and not self.failed:  # noqa: ASYNC110
                await asyncio.sleep(0.001)

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def check(self) -> None:
        """Every acknowledged key is there, none twice, and no call failed."""
        assert self.failed == [], self.failed[:3]
        kept = await self.host.call(PID, "all")
        missing = set(self.acked) - set(kept)
        assert not missing, f"{len(missing)} of {len(self.acked)} acknowledged writes lost"
        assert len(kept) == len(set(kept)), "a write was applied twice"


def manifest_extra(backend: str) -> str:
    return f'isolation = "{backend}"\n'


def set_version(directory: Path, version: str) -> None:
    manifest = directory / "plugin.toml"
    manifest.write_text(
        "\n".join(
            f'version = "{version}"' if line.startswith("version") else line
            for line in manifest.read_text().splitlines()
        )
        + "\n"
    )


@pytest.fixture(params=["inline", "process"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(make_host: Callable[..., Host], backend: str) -> Host:
    # inline: trusted; process: the default deny-by-default policy (a sandboxed worker)
    return make_host(init_timeout=20, probation=0.05, inline=["*"] if backend == "inline" else [])


@pytest.mark.slow
async def test_fifty_reloads_under_sixteen_writers_lose_nothing(
    plugins: PluginFactory, make_host: Callable[..., Host], backend: str, kind: str
) -> None:
    directory = plugins(PID, code(kind, "v0"), dirname="keys", extra=manifest_extra(backend))
    async with make(make_host, backend) as host:
        assert host.plugin(PID).isolation == backend
        async with Writers(host) as writers:
            for n in range(1, 51):
                (directory / "main.py").write_text(code(kind, f"v{n}"))
                await host.reload(PID)
                assert await host.call(PID, "label") == f"v{n}"
                await writers.some()  # the new version took writes before the next swap
        await writers.check()
        assert host.state is not None
        reloads = [e for e in host.history(PID, limit=200) if e.action == "reload"]
        assert len(reloads) == 50 and all(e.result == "ok" for e in reloads)
        # the hold is measured and bounded
        assert all(0 <= e.details["held_seconds"] < 20 for e in reloads)


@pytest.mark.slow
async def test_upgrades_and_rollbacks_under_sixteen_writers_lose_nothing(
    plugins: PluginFactory, make_host: Callable[..., Host], backend: str, kind: str, tmp_path: Path
) -> None:
    plugins(PID, code(kind, "1.0.0"), dirname="keys", extra=manifest_extra(backend))
    async with make(make_host, backend) as host:
        async with Writers(host) as writers:
            for n in range(1, 6):
                version = f"1.{n}.0"
                staged = PluginFactory(tmp_path / f"staged-{n}")(
                    PID, code(kind, version), version=version, dirname="keys",
                    extra=manifest_extra(backend),
                )  # fmt: skip
                host.install(staged)
                await host.upgrade(PID, version)
                assert await host.call(PID, "label") == version
                await writers.some()
                await host.rollback(PID)
                assert host.plugin(PID).version == f"1.{n - 1}.0"
                await writers.some()
                await host.upgrade(PID, version)
                await writers.some()
        await writers.check()


HEALTH_FAILS = """
    @command
    def health(self) -> dict[str, bool]:
        return {"ok": len(self.keys) < self.first + 40}

    def import_state(self, state: list[str]) -> None:
        self.keys = list(state)
        self.first = len(self.keys)
"""


@pytest.mark.slow
async def test_a_failed_probation_carries_the_new_versions_writes_back(
    plugins: PluginFactory, make_host: Callable[..., Host], backend: str
) -> None:
    """The new version acknowledges writes during its probation, then fails its health
    probe: routing switches back, and the old version gets what the new one took."""
    directory = plugins(PID, code("memory", "v1"), dirname="keys", extra=manifest_extra(backend))
    async with make_host(
        init_timeout=20, probation=5.0, inline=["*"] if backend == "inline" else []
    ) as host:
        async with Writers(host) as writers:
            for n in range(3):
                (directory / "main.py").write_text(code("memory", f"v2-{n}", HEALTH_FAILS))
                with pytest.raises(PluginReloadError, match="failed its probation"):
                    await host.reload(PID)
                assert await host.call(PID, "label") == "v1"
                await writers.some()
        await writers.check()
        failures = [e for e in host.history(PID, limit=20) if e.action == "reload"]
        assert failures and all("carried back" not in (e.reason or "") for e in failures)


async def test_a_swap_waits_for_long_calls_and_refuses_when_they_outlast_the_drain(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """A call still running on the old version when its state would be taken could
    acknowledge a write after the export: the swap waits for it (bounded), and past
    the bound it is refused with the old version serving."""
    slow = """
    @command
    async def slow(self, seconds: float) -> str:
        import asyncio
        await asyncio.sleep(seconds)
        self.keys.append("slow")
        return "done"
"""
    directory = plugins(PID, code("memory", "v1", slow), dirname="keys")
    async with make_host(init_timeout=20, probation=0) as host:
        call = asyncio.ensure_future(host.call(PID, "slow", seconds=0.3))
        await asyncio.sleep(0.05)
        (directory / "main.py").write_text(code("memory", "v2", slow))
        await host.manager.reload_plugin(PID, drain_timeout=5)
        assert await call == "done"
        assert "slow" in await host.call(PID, "all")  # written before the export
        long = asyncio.ensure_future(host.call(PID, "slow", seconds=2))
        await asyncio.sleep(0.05)
        (directory / "main.py").write_text(code("memory", "v3", slow))
        with pytest.raises(PluginReloadError, match=r"did not finish within 0\.2 s"):
            await host.manager.reload_plugin(PID, drain_timeout=0.2)
        assert await host.call(PID, "label") == "v2"  # held calls went back to the old one
        assert await long == "done"


@pytest.mark.slow
async def test_a_host_restart_keeps_what_a_memory_plugin_acknowledged(
    plugins: PluginFactory, make_host: Callable[..., Host], backend: str, kind: str
) -> None:
    """A stop exports each plugin's state (durably) before cleaning it up; the next
    start imports it after initialize. Writers run until the stop begins."""
    plugins(PID, code(kind, "v1"), dirname="keys", extra=manifest_extra(backend))
    acked: list[str] = []
    for round_ in range(3):
        async with make(make_host, backend) as host:
            kept = await host.call(PID, "all")
            assert not set(acked) - set(kept), "a restart lost acknowledged writes"
            async with Writers(host, prefix=f"r{round_}-") as writers:
                await writers.some(200)
            assert writers.failed == []
            acked += writers.acked
    async with make(make_host, backend) as host:
        kept = await host.call(PID, "all")
        assert not set(acked) - set(kept) and len(kept) == len(set(kept))
        if kind == "memory":  # the kept state was taken: a later start does not take it again
            assert host.store is not None
            assert not host.store.handover_file(PID).exists()


async def test_a_kept_state_the_plugin_refuses_fails_its_start_and_stays(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    directory = plugins(PID, code("memory", "v1"), dirname="keys")
    async with make_host(init_timeout=20) as host:
        await host.call(PID, "put", key="precious")
    refusing = (
        "\n    def import_state(self, state: list[str]) -> None:\n        raise ValueError('no')\n"
    )
    (directory / "main.py").write_text(code("memory", "v2", refusing))
    async with make_host(init_timeout=20) as host:
        rec = host.plugin(PID)
        assert str(rec.state) == "failed"
        assert "kept at its last stop raised ValueError: no" in (rec.reason or "")
    (directory / "main.py").write_text(code("memory", "v3"))
    async with make_host(init_timeout=20) as host:
        assert await host.call(PID, "all") == ["precious"]
