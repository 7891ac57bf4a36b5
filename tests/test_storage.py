"""``context.storage``: the same durable store inline and in a sandboxed worker.

Real plugins on a real host, a real SQLite file in the plugin's data directory,
a real worker killed with SIGKILL in the middle of its writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from plugbay import Environment, PlugbayError, PluginConfig, PluginContext, StorageFull
from plugbay.api._storage import FILENAME
from plugbay.monitor.metrics import PluginMetrics
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

KEEPER = """
import asyncio
from dataclasses import dataclass
from plugbay import UtilityPlugin, command

@dataclass
class Note:
    text: str
    stars: int

class P(UtilityPlugin):
    @command
    def put(self, key: str, text: str, stars: int) -> None:
        self.context.storage.set(key, Note(text, stars))

    @command
    def note(self, key: str) -> dict[str, str | int] | None:
        note = self.context.storage.get(key, type=Note)
        return None if note is None else {"text": note.text, "stars": note.stars}

    @command
    def drop(self, key: str) -> bool:
        return self.context.storage.delete(key)

    @command
    def keys(self, prefix: str = "") -> list[str]:
        return self.context.storage.keys(prefix)

    @command
    def put_blob(self, name: str, size: int) -> None:
        self.context.storage.put_blob(name, bytes(range(256)) * (size // 256))

    @command
    def blob_size(self, name: str) -> int:
        data = self.context.storage.get_blob(name)
        return -1 if data is None else len(data)

    @command
    def drop_blob(self, name: str) -> bool:
        return self.context.storage.delete_blob(name)

    @command
    def version(self) -> str:
        return self.version

    @command
    async def churn(self) -> None:
        store = self.context.storage
        i = store.get("count", 0)
        while True:
            i += 1
            store.put_blob(f"b{i}", bytes([i % 256]) * 40_000)
            store.set("count", i)
            await asyncio.sleep(0)

    @command
    def count(self) -> int:
        return self.context.storage.get("count", 0, type=int)

    @command
    def check(self) -> dict[str, str | int | list[str]]:
        store = self.context.storage
        count = store.get("count", 0, type=int)
        bad = []
        for name in store.blobs("b"):
            i = int(name[1:])
            if store.get_blob(name) != bytes([i % 256]) * 40_000:
                bad.append(name)
        missing = [str(i) for i in range(1, count + 1) if store.get_blob(f"b{i}") is None]
        import sqlite3
        with sqlite3.connect(store.path) as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        return {"count": count, "bad": bad, "missing": missing, "integrity": integrity}
"""


@pytest.fixture(params=["inline", "process"])
def isolation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def keeper(plugins: PluginFactory, isolation: str, version: str = "1.0.0", extra: str = "") -> Path:
    return plugins(
        "acme.keeper",
        KEEPER,
        version=version,
        extra=f'isolation = "{isolation}"\n[resources]\ntimeout = 60\n{extra}',
    )


def make_host(plugins: PluginFactory, tmp_path: Path, isolation: str, **kwargs: object) -> Host:
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=20,
        inline=["*"] if isolation == "inline" else [],
        **kwargs,  # type: ignore[arg-type]
    )


async def test_values_and_blobs_are_kept_across_reload_upgrade_and_restart(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    keeper(plugins, isolation)
    async with make_host(plugins, tmp_path, isolation) as host:
        await host.call("acme.keeper", "put", key="n/1", text="tea", stars=3)
        await host.call("acme.keeper", "put", key="n/2", text="cake", stars=5)
        await host.call("acme.keeper", "put", key="other", text="x", stars=0)
        await host.call("acme.keeper", "put_blob", name="pic", size=100_000)
        assert await host.call("acme.keeper", "note", key="n/1") == {"text": "tea", "stars": 3}
        assert await host.call("acme.keeper", "keys", prefix="n/") == ["n/1", "n/2"]
        assert await host.call("acme.keeper", "drop", key="other") is True
        assert await host.call("acme.keeper", "drop", key="other") is False
        assert await host.call("acme.keeper", "note", key="other") is None

        await host.reload("acme.keeper")
        assert await host.call("acme.keeper", "keys") == ["n/1", "n/2"]

        upgraded = keeper(PluginFactory(tmp_path / "v2"), isolation, version="2.0.0")
        await host.reload("acme.keeper", source=upgraded)
        assert await host.call("acme.keeper", "version") == "2.0.0"
        assert await host.call("acme.keeper", "note", key="n/2") == {"text": "cake", "stars": 5}
        assert await host.call("acme.keeper", "blob_size", name="pic") == 99_840

    # a new host on the same state directory: the same data, in the plugin's data dir (a
    # sandboxed plugin's is its storage image, mounted only while the plugin runs)
    data = tmp_path / "state" / "data"
    kept = [data / "acme.keeper" / FILENAME, data / ".quota" / "acme.keeper.ext4"]
    assert any(path.is_file() for path in kept)
    async with make_host(plugins, tmp_path, isolation) as host:
        assert await host.call("acme.keeper", "keys") == ["n/1", "n/2"]
        assert await host.call("acme.keeper", "drop_blob", name="pic") is True
        assert await host.call("acme.keeper", "blob_size", name="pic") == -1


@pytest.mark.slow
async def test_a_worker_killed_mid_write_leaves_the_store_consistent(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    keeper(plugins, "process")
    plugins("acme.ok", extra='isolation = "process"\n')
    async with make_host(plugins, tmp_path, "process", restart_backoff=0.05) as host:
        churn = asyncio.create_task(host.call("acme.keeper", "churn"))
        async with asyncio.timeout(60):  # a guard against a hang, not a timed assertion
            while await host.call("acme.keeper", "count") < 25:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        pid = host.plugin("acme.keeper").handle.pid  # type: ignore[union-attr]
        acknowledged = await host.call("acme.keeper", "count")
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(PlugbayError):
            await churn
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"
        async with asyncio.timeout(60):
            while True:
                rec = host.plugin("acme.keeper")
                if str(rec.state) == "active" and getattr(rec.handle, "pid", pid) != pid:
                    break
                await asyncio.sleep(0.02)
        report = await host.call("acme.keeper", "check")
        assert report["integrity"] == "ok"
        assert report["count"] >= acknowledged
        assert report["bad"] == [] and report["missing"] == []
        # and it goes on writing where it stopped
        await host.call("acme.keeper", "put", key="after", text="crash", stars=1)
        assert await host.call("acme.keeper", "note", key="after") == {"text": "crash", "stars": 1}


@pytest.mark.slow
async def test_a_full_quota_is_storage_full_and_the_store_stays_usable(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    keeper(plugins, "process", extra='storage = "2MiB"\n')
    plugins("acme.ok", extra='isolation = "process"\n')
    async with make_host(plugins, tmp_path, "process") as host:
        await host.call("acme.keeper", "put", key="kept", text="before", stars=1)
        pid = host.plugin("acme.keeper").handle.pid  # type: ignore[union-attr]
        full: StorageFull | None = None
        for i in range(40):  # 8 MB at most into 2 MiB
            try:
                await host.call("acme.keeper", "put_blob", name=f"big{i}", size=200_000)
            except StorageFull as exc:
                full = exc
                break
        assert full is not None and "storage is full" in str(full)
        assert full.plugin == "acme.keeper"
        assert "raise its storage limit" in str(full)
        # the same worker, nothing lost, room again after a delete
        assert host.plugin("acme.keeper").handle.pid == pid  # type: ignore[union-attr]
        assert await host.call("acme.keeper", "note", key="kept") == {"text": "before", "stars": 1}
        assert await host.call("acme.keeper", "drop_blob", name="big0") is True
        await host.call("acme.keeper", "put_blob", name="small", size=10_000)
        assert await host.call("acme.keeper", "blob_size", name="small") == 9984
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"
        data = tmp_path / "state" / "data" / "acme.keeper"
        assert sum(f.stat().st_size for f in data.iterdir()) <= 2 << 20


def context(tmp_path: Path) -> PluginContext:
    return PluginContext(
        Environment("1.0.0", "acme.unit", "1.0.0", tmp_path),
        services=None,  # type: ignore[arg-type]
        config=PluginConfig(),
        logger=logging.getLogger("test"),
        metrics=PluginMetrics("acme.unit"),
    )


def test_bad_input_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    store = context(tmp_path).storage
    store.set("n", 1)
    with pytest.raises(PlugbayError, match="cannot store object under 'x'"):
        store.set("x", object())
    with pytest.raises(PlugbayError, match="the value under 'n' is not a str"):
        store.get("n", type=str)
    with pytest.raises(PlugbayError, match="a key must be a non-empty string"):
        store.set("", 1)
    with pytest.raises(PlugbayError, match="must be bytes"):
        store.put_blob("b", "text")  # type: ignore[arg-type]
    assert store.keys() == ["n"] and store.blobs() == []
    # prefixes are plain text, not patterns
    store.set("a_%", 1)
    store.set("abc", 2)
    assert store.keys("a_") == ["a_%"]
    store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / FILENAME)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
