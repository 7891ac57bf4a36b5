"""A full disk under the state directory: the host keeps serving calls, refuses changes
with a clear 507, never applies a change it could not keep, and loses no audit record
silently. On a real full file system: a small tmpfs mounted for the test (root only)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

from plugbay.api.errors import StateError
from plugbay.runtime.host import Host
from tests._served import api_served
from tests.conftest import PluginFactory

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b
"""


def _mount(point: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``point``; the reason when that is impossible."""
    if os.geteuid() != 0:
        return "mounting a small file system needs root"
    point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return None if done.returncode == 0 else f"cannot mount a tmpfs: {done.stderr.strip()}"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 8 MiB file system of its own, unmounted after the test."""
    point = tmp_path / "small"
    reason = _mount(point, "8m")
    if reason is not None:
        pytest.skip(reason)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(directory: Path) -> Path:
    """Write until the file system says ENOSPC; returns the filler file (delete it to free)."""
    filler = directory / "filler"
    block = b"\0" * (64 << 10)
    with open(filler, "wb", buffering=0) as f:
        with pytest.raises(OSError, match="No space left on device"):
            _write_forever(f, block)
        with contextlib.suppress(OSError):  # the last partial block
            while True:
                f.write(b"\0" * 512)
    return filler


def _write_forever(f: BinaryIO, block: bytes) -> None:
    while True:
        f.write(block)


def truncate_wal(state: Path) -> None:
    """A checkpoint that gives the WAL's space back, as SQLite does from time to time: the
    next write then needs new blocks of the (full) disk."""
    db = sqlite3.connect(state / "state.db")
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


class Served:
    def __init__(self, host: Host, url: str, token: str) -> None:
        self.host = host
        self.http = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


@pytest.fixture
def start(
    plugins: PluginFactory, small_fs: Path
) -> Callable[[], contextlib.AbstractAsyncContextManager[Served]]:
    plugins("acme.calc", CALC)
    plugins("acme.other", CALC)

    @contextlib.asynccontextmanager
    async def served() -> AsyncIterator[Served]:
        host = Host(plugins_dir=plugins.root, state_dir=small_fs / "state")
        async with host, api_served(host) as (url, token):
            s = Served(host, url, token)
            try:
                yield s
            finally:
                await s.http.aclose()

    return served


def state_of(host: Host, plugin_id: str) -> str:
    return str(host.plugin(plugin_id).state)


async def test_a_full_disk_refuses_changes_keeps_serving_and_applies_nothing(
    start: Callable[[], Any], small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = small_fs / "state"
    async with start() as s:
        truncate_wal(state)
        filler = fill(small_fs)
        before = len(s.host.state.history("acme.calc", limit=1000))

        r = await s.http.post("/api/v1/plugins/acme.calc/disable", json={"reason": "x"})
        assert r.status_code == 507, r.text
        error = r.json()["error"]
        assert "full" in error["message"] + error["hint"], error
        assert error["where"] == str(state / "state.db")
        for method, path, body in (
            ("POST", "/api/v1/plugins/acme.other/unload", None),
            ("PUT", "/api/v1/plugins/acme.calc/config", {"values": {}}),
        ):
            refused = await s.http.request(method, path, json=body)
            assert refused.status_code == 507, (path, refused.text)

        # not applied, in the host or in its state
        assert state_of(s.host, "acme.calc") == "active"
        assert state_of(s.host, "acme.other") == "active"
        # the host keeps serving calls
        for i in range(20):
            call = await s.http.post(
                "/api/v1/plugins/acme.calc/commands/add", json={"a": i, "b": 1}
            )
            assert call.json() == {"result": i + 1}
        assert (await s.http.get("/api/v1/plugins")).status_code == 200

        # through the host's own API too: kept first, or not done at all
        with pytest.raises(StateError, match="full") as err:
            await s.host.disable("acme.calc", "maintenance")
        assert err.value.details.get("disk_full") is True
        assert state_of(s.host, "acme.calc") == "active"

        # each refusal is on the security log (no record was silently dropped)
        refusals = [
            m.getMessage() for m in caplog.records
            if m.name == "plugbay.security" and "→ 507" in m.getMessage()
        ]  # fmt: skip
        assert len(refusals) == 3, refusals

        await s.host.events.drain()  # the audit plugin's and the monitor's writes too
        tracebacks = [
            f"{m.name}: {m.getMessage()}" for m in caplog.records if m.exc_info is not None
        ]
        assert tracebacks == []  # a full disk is reported, not a bug

        filler.unlink()  # space again: the same change now works
        r = await s.http.post("/api/v1/plugins/acme.other/disable", json={"reason": "ops"})
        assert r.status_code == 200, r.text
        history = s.host.state.history("acme.calc", limit=1000)
        assert len(history) == before  # nothing half-written for the refused changes

    async with start() as s:  # a restart keeps exactly what was kept
        assert state_of(s.host, "acme.calc") == "active"
        assert state_of(s.host, "acme.other") == "disabled"
        assert s.host.plugin("acme.other").reason == "ops"


def test_a_restore_on_a_full_disk_changes_nothing_and_says_what_to_do(
    small_fs: Path, tmp_path: Path
) -> None:
    """The restore moved the database aside before copying the backup: on a full disk the
    copy failed and left no state.db at all (the next start: 'the state database is
    missing'). Now the copy is made first, and a failure leaves the database in place."""
    from plugbay.state import StateStore
    from plugbay.state.backups import manual_backup
    from tests._cli import plugbay

    state = small_fs / "state"
    with StateStore.open(state) as store:
        store.set_enabled("acme.calc", False, "maintenance")
        for i in range(200):  # a database of some size, which the full disk cannot copy
            store.add_event("acme.calc", "load", details={"pad": "x" * 2000, "i": i})
    backup = manual_backup(state)
    with StateStore.open(state) as store:
        store.set_enabled("acme.other", False, "after the backup")
    truncate_wal(state)
    filler = fill(small_fs)
    done = plugbay("state", "restore", "--state", str(state), "--from", str(backup), cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "cannot restore the state database: No space left on device" in done.stderr
    assert "nothing was changed" in done.stderr
    assert sorted(p.name for p in state.glob("state.db*")) == ["state.db"]
    filler.unlink()
    with StateStore.open(state, read_only=True) as store:  # as it was, whole
        assert store.disabled() == {"acme.calc": "maintenance", "acme.other": "after the backup"}
    again = plugbay("state", "restore", "--state", str(state), "--from", str(backup), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    with StateStore.open(state) as store:
        assert store.disabled() == {"acme.calc": "maintenance"}


def test_a_host_started_on_a_full_disk_says_so_not_a_traceback(
    plugins: PluginFactory, small_fs: Path, tmp_path: Path
) -> None:
    """The lock file's pid (written at every start) could not be written on a full disk:
    the start ended with an OSError traceback instead of saying the disk is full."""
    from tests._cli import plugbay

    plugins("acme.calc", CALC)
    state = small_fs / "state"
    args = ("run", "--once", "--no-http", "--no-metrics", "--state", str(state))
    first = plugbay(*args, "-p", str(plugins.root), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    truncate_wal(state)
    filler = fill(small_fs)
    try:
        full = plugbay(*args, "-p", str(plugins.root), cwd=tmp_path)
    finally:
        filler.unlink()
    assert full.returncode == 1
    assert "Traceback" not in full.stderr + full.stdout
    assert "the disk holding the state directory is full" in full.stderr, full.stderr
    assert str(state / "state.db") in full.stderr
    again = plugbay(*args, "-p", str(plugins.root), cwd=tmp_path)  # space again: it starts
    assert again.returncode == 0, again.stderr
