"""Attacks on the storage quota: every way of taking disk stops at the quota, at the write.

The kernel enforces the quota (``isolation.quota``: an ext4 image of the quota's
size, loop-mounted at the plugin's data directory), so each attack here checks
what a user would see:

* the plugin's own code gets ``ENOSPC`` (an ``OSError`` it can handle), or its
  caller a ``ResourceLimitExceeded`` saying "no space", and the worker is kept;
* the operator gets a ``security.limit`` event naming the plugin and ``storage``,
  also when the plugin wrote through ``ctypes`` where Python never saw the error;
* on the host's disk the data directory and its image never hold more than the
  quota plus 1 MiB, whatever the plugin does;
* a neighbouring sandboxed plugin keeps answering;
* stopping the plugin or the host unmounts the image and frees its loop device,
  and the data is there again, unchanged, on the next start; a plain data
  directory from before is moved into the image on first use.

These tests need what the kernel mechanism needs (root, loop devices,
mkfs.ext4); the machines this project runs on have it, and the first test checks
it so that nothing here passes by being skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from plugbay import ResourceLimitExceeded
from plugbay.isolation import quota
from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

MiB = 1 << 20
QUOTA = 8 * MiB

NEIGHBOUR = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

HOG = """
import ctypes, errno, os
from plugbay import UtilityPlugin, command

libc = ctypes.CDLL(None, use_errno=True)
CHUNK = b"x" * 65536

def name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))

class P(UtilityPlugin):
    held: list[int] = []

    @property
    def data(self):
        return self.context.environment.data_dir

    @command
    def free(self) -> int:
        for fd in self.held:
            os.close(fd)
        self.held.clear()
        n = 0
        for entry in os.scandir(self.data):
            os.unlink(entry.path)
            n += 1
        return n

    @command(blocking=True)  # long enough to hold up the worker's heartbeat
    def small_files(self) -> str:
        n = 0
        try:
            while True:
                (self.data / f"chunk-{n}").write_bytes(CHUNK)
                n += 1
        except OSError as exc:
            return f"{name(exc)} after {n} files"

    @command(blocking=True)  # long enough to hold up the worker's heartbeat
    def empty_files(self) -> str:
        n = 0
        try:
            while True:
                (self.data / f"e{n}").touch()
                n += 1
        except OSError as exc:
            return f"{name(exc)} after {n} files"

    @command(blocking=True)  # long enough to hold up the worker's heartbeat
    def fallocate(self, size: int) -> str:
        fd = os.open(self.data / "big", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            return name(exc)
        finally:
            os.close(fd)
        return "allocated"

    @command(blocking=True)  # long enough to hold up the worker's heartbeat
    def sparse(self) -> str:
        # a file whose size is the whole quota and takes nothing, then its holes filled in
        with open(self.data / "sparse", "wb") as f:
            f.truncate(8 * 1024 * 1024)
        fd = os.open(self.data / "sparse", os.O_WRONLY)
        try:
            offset = 0
            while True:
                os.pwrite(fd, CHUNK, offset)
                offset += len(CHUNK)
        except OSError as exc:
            return name(exc)
        finally:
            os.close(fd)

    @command(blocking=True)  # long enough to hold up the worker's heartbeat
    def hard_links(self) -> str:
        # one file under a thousand names, grown through them in turn
        first = self.data / "linked-0"
        first.write_bytes(CHUNK)
        try:
            for n in range(1, 1000):
                os.link(first, self.data / f"linked-{n}")
            n = 0
            while True:
                with open(self.data / f"linked-{n % 1000}", "ab") as f:
                    f.write(CHUNK)
                n += 1
        except OSError as exc:
            return name(exc)

    @command(blocking=True)  # long enough to hold up the worker's heartbeat
    def unlinked(self) -> str:
        # files with no name left, kept open: invisible to anyone listing the directory
        try:
            while True:
                fd = os.open(self.data / "ghost", os.O_WRONLY | os.O_CREAT, 0o600)
                os.unlink(self.data / "ghost")
                self.held.append(fd)
                for _ in range(16):
                    os.write(fd, CHUNK)
        except OSError as exc:
            return name(exc)

    @command(blocking=True)  # long enough to hold up the worker's heartbeat
    def raw_write(self) -> str:
        # libc straight from ctypes: no Python exception, no audit event, only the kernel
        fd = libc.open(str(self.data / "raw").encode(), os.O_WRONLY | os.O_CREAT, 0o600)
        buf = ctypes.create_string_buffer(CHUNK)
        while libc.write(fd, buf, len(CHUNK)) > 0:
            pass
        err = ctypes.get_errno()
        self.held.append(fd)  # kept open and full: the host sees the image full
        return errno.errorcode.get(err, str(err))

    @command(blocking=True)  # long enough to hold up the worker's heartbeat
    def unhandled(self) -> None:
        while True:
            with open(self.data / "more", "ab") as f:
                f.write(CHUNK)

    @command
    def keep(self, name: str, text: str) -> None:
        (self.data / name).write_text(text)

    @command
    def read(self, name: str) -> str:
        return (self.data / name).read_text()
"""

LIMITS = f"""
[resources]
storage = "{QUOTA // MiB}MiB"
file-size = "64MiB"
timeout = 60
"""


@dataclass
class Arena:
    host: Host
    state_dir: Path

    def data_dir(self, plugin_id: str) -> Path:
        return self.state_dir / "data" / plugin_id


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` to hold (at most 10 s: a hang guard, not a timed assertion)."""
    async with asyncio.timeout(10):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def on_disk(path: Path) -> int:
    """Bytes the host's disk gives ``path`` (a file, or a directory with what is under it)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    seen: dict[tuple[int, int], int] = {}  # an inode under many names is counted once
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                seen[st.st_dev, st.st_ino] = st.st_blocks * 512
    return sum(seen.values())


def within_quota(arena: Arena, plugin_id: str, quota_bytes: int) -> None:
    """What the plugin holds on the host's disk: at most its quota plus 1 MiB."""
    data_dir = arena.data_dir(plugin_id)
    st = os.statvfs(data_dir)
    used_inside = (st.f_blocks - st.f_bfree) * st.f_frsize
    assert used_inside <= quota_bytes + MiB, used_inside
    assert on_disk(data_dir) <= quota_bytes + MiB
    assert on_disk(quota.image_path(data_dir)) <= quota_bytes + MiB


async def unmounted(data_dir: Path) -> None:
    """Wait until nothing is mounted at ``data_dir`` and no loop device holds its image
    (the worker's exit, noticed by the host, releases them)."""
    image = quota.image_path(data_dir)
    await until(lambda: quota.mount_source(data_dir) is None and not quota.loop_devices_of(image))


def security_limits(host: Host, plugin_id: str, since: int) -> list[str]:
    assert host.state is not None
    return [
        e.reason or ""
        for e in host.state.history(plugin_id, limit=200)
        if e.id > since and e.action == "security.limit" and "storage" in (e.reason or "")
    ]


def latest_history(host: Host) -> int:
    assert host.state is not None
    latest = host.state.history(limit=1)
    return latest[0].id if latest else 0


async def storage_event_after(host: Host, plugin_id: str, since: int) -> list[str]:
    """The storage-limit events recorded since ``since``; waits for the first (a hang guard)."""
    await until(lambda: bool(security_limits(host, plugin_id, since)))
    return security_limits(host, plugin_id, since)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def arena(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Arena]:
    assert quota.probe().enforced, quota.probe().detail
    root = tmp_path_factory.mktemp("quota")
    factory = PluginFactory(root / "plugins")
    factory("acme.neighbour", NEIGHBOUR, extra=LIMITS)
    factory("acme.hog", HOG, extra=LIMITS)
    host = Host(factory.root, state_dir=root / "state", entry_points=False, init_timeout=30)
    async with host:
        yield Arena(host, root / "state")


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def emptied(arena: Arena) -> AsyncIterator[None]:
    """Each attack starts on an empty data directory, once the host has seen it empty
    (a disk that fills up again is then a new event, not the one before)."""
    await arena.host.call("acme.hog", "free")
    await until(
        lambda: (arena.host.info("acme.hog")["usage"].get("storage_bytes") or 0) < QUOTA // 2
    )
    yield
    assert await arena.host.call("acme.neighbour", "ping") == "pong"


@pytest.mark.parametrize(
    ("attack", "answer"),
    [
        ("small_files", "ENOSPC after"),
        ("empty_files", "ENOSPC after"),
        ("sparse", "ENOSPC"),
        ("hard_links", "ENOSPC"),
        ("unlinked", "ENOSPC"),
    ],
)
async def test_every_way_of_filling_the_disk_stops_at_the_quota_with_enospc(
    arena: Arena, attack: str, answer: str
) -> None:
    host = arena.host
    pid = host.plugin("acme.hog").handle.pid  # type: ignore[union-attr]
    since = latest_history(host)
    result = await host.call("acme.hog", attack)
    assert result.startswith(answer), result
    within_quota(arena, "acme.hog", QUOTA)
    assert (await storage_event_after(host, "acme.hog", since))[0].startswith(
        "plugin 'acme.hog' hit its storage limit"
    )
    # a full disk is no reason to replace the worker: it frees space and carries on
    assert host.plugin("acme.hog").handle.pid == pid  # type: ignore[union-attr]
    await host.call("acme.hog", "free")
    await host.call("acme.hog", "keep", name="after.txt", text="room again")
    assert await host.call("acme.hog", "read", name="after.txt") == "room again"


@pytest.fixture(scope="module", params=["process", "ray"])
def attackers_on(request: pytest.FixtureRequest) -> str:
    """These attacks come from a sandboxed worker here and from a Ray node's agent."""
    return str(request.param)


async def test_fallocate_far_past_the_quota_takes_nothing(arena: Arena) -> None:
    assert await arena.host.call("acme.hog", "fallocate", size=32 * MiB) == "ENOSPC"
    within_quota(arena, "acme.hog", QUOTA)
    # ext4 keeps what it could allocate before it ran out: never more than the quota
    assert (arena.data_dir("acme.hog") / "big").stat().st_blocks * 512 <= QUOTA


async def test_a_write_through_ctypes_is_refused_and_still_reported(arena: Arena) -> None:
    host = arena.host
    since = latest_history(host)
    assert await host.call("acme.hog", "raw_write") == "ENOSPC"
    within_quota(arena, "acme.hog", QUOTA)
    events = await storage_event_after(host, "acme.hog", since)
    assert "out of space" in events[0] and "ENOSPC" in events[0], events
    # sizes read like 7.7 MiB, never 7.70312 MiB (what the image holds is rarely whole)
    sizes = re.findall(r"(\d+(?:\.\d+)?) (?:MiB|KiB)", events[0])
    assert sizes and all(len(n.partition(".")[2]) <= 1 for n in sizes), events[0]
    assert f"of its {QUOTA // MiB} MiB storage quota" in events[0], events[0]


async def test_an_unhandled_enospc_reaches_the_caller_as_no_space(
    arena: Arena, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="plugbay.security")
    with pytest.raises(ResourceLimitExceeded, match="no space left in its data directory") as info:
        await arena.host.call("acme.hog", "unhandled")
    assert info.value.details["limit"] == "storage"
    assert "of 8 MiB" in str(info.value) and "No space left on device" in str(info.value)
    assert any(
        "acme.hog" in r.getMessage() and "storage" in r.getMessage()
        for r in caplog.records
        if r.name == "plugbay.security"
    )
    within_quota(arena, "acme.hog", QUOTA)


async def test_plugbay_info_says_what_enforces_the_quota(arena: Arena) -> None:
    usage = arena.host.info("acme.hog")["usage"]
    assert usage["storage_quota"] == "enforced by the kernel (loop-mounted ext4 image)"


async def test_posix_fallocate_of_4_gib_against_256_mib(tmp_path: Path) -> None:
    """The issue's attack as it was: 4 GiB asked at once, with a file-size limit that lets
    it through, is refused by the quota; with the default file-size limit, by that."""
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.fat", HOG, extra='[resources]\nstorage = "256MiB"\nfile-size = "8GiB"\n')
    factory("acme.slim", HOG, extra='[resources]\nstorage = "256MiB"\n')
    policy = IsolationPolicy.from_config({"policy": {"limits": {"file-size": "8GiB"}}})
    async with Host(
        factory.root, state_dir=tmp_path / "state", entry_points=False, policy=policy
    ) as host:
        arena = Arena(host, tmp_path / "state")
        assert await host.call("acme.fat", "fallocate", size=4 << 30) == "ENOSPC"
        within_quota(arena, "acme.fat", 256 * MiB)
        assert await host.call("acme.slim", "fallocate", size=4 << 30) == "EFBIG"
        within_quota(arena, "acme.slim", 256 * MiB)


async def test_data_is_kept_across_restarts_and_nothing_is_left_mounted(tmp_path: Path) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.hog", HOG, extra=LIMITS)
    state = tmp_path / "state"
    data_dir = state / "data" / "acme.hog"
    image = quota.image_path(data_dir)
    # a plain data directory, as a plugbay before the kernel quota left it
    (data_dir / "old").mkdir(parents=True)
    (data_dir / "old" / "note.txt").write_text("written by an older plugbay")
    os.symlink("old/note.txt", data_dir / "link")

    async with Host(factory.root, state_dir=state, entry_points=False) as host:
        assert quota.mount_source(data_dir) is not None
        assert await host.call("acme.hog", "read", name="old/note.txt") == (
            "written by an older plugbay"
        )
        assert await host.call("acme.hog", "read", name="link") == "written by an older plugbay"
        await host.call("acme.hog", "keep", name="new.txt", text="kept across restarts")
        pid = host.plugin("acme.hog").handle.pid  # type: ignore[union-attr]
        await host.reload("acme.hog")
        assert host.plugin("acme.hog").handle.pid != pid  # type: ignore[union-attr]
        assert await host.call("acme.hog", "read", name="new.txt") == "kept across restarts"
        await host.unload("acme.hog")
        # stopped: unmounted and its loop device freed; the plain directory is empty
        await unmounted(data_dir)
        assert list(data_dir.iterdir()) == []
        await host.load("acme.hog")
        assert await host.call("acme.hog", "read", name="new.txt") == "kept across restarts"
    assert quota.mount_source(data_dir) is None
    assert quota.loop_devices_of(image) == []

    async with Host(factory.root, state_dir=state, entry_points=False) as host:
        assert await host.call("acme.hog", "read", name="new.txt") == "kept across restarts"
        assert await host.call("acme.hog", "read", name="old/note.txt") == (
            "written by an older plugbay"
        )
    assert quota.loop_devices_of(image) == []


async def test_a_raised_quota_grows_the_image_and_keeps_the_data(tmp_path: Path) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    directory = factory("acme.hog", HOG, extra=LIMITS)
    state = tmp_path / "state"
    async with Host(factory.root, state_dir=state, entry_points=False) as host:
        await host.call("acme.hog", "keep", name="note.txt", text="before the raise")
        assert (await host.call("acme.hog", "small_files")).startswith("ENOSPC")
    manifest = directory / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('storage = "8MiB"', 'storage = "16MiB"'))
    async with Host(factory.root, state_dir=state, entry_points=False) as host:
        assert await host.call("acme.hog", "read", name="note.txt") == "before the raise"
        st = os.statvfs(state / "data" / "acme.hog")
        assert st.f_bavail * st.f_frsize > 6 * MiB  # the new room is there
        assert (await host.call("acme.hog", "small_files")).startswith("ENOSPC")
        within_quota(Arena(host, state), "acme.hog", 16 * MiB)


async def test_a_host_killed_with_its_image_mounted_leaves_nothing_mounted(tmp_path: Path) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.hog", HOG, extra=LIMITS)
    state = tmp_path / "state"
    script = f"""
import asyncio, os, sys
sys.path[:0] = {sys.path!r}
from plugbay.runtime.host import Host

async def main():
    host = Host({str(factory.root)!r}, state_dir={str(state)!r}, entry_points=False)
    await host.start()
    await host.call("acme.hog", "keep", name="before.txt", text="before the kill")
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            assert (await proc.stdout.readline()).strip() == b"ready"
    finally:
        proc.kill()
        await proc.wait()
    data_dir = state / "data" / "acme.hog"
    # the host could not unmount it; its janitor, which outlives it, does
    await unmounted(data_dir)
    async with Host(factory.root, state_dir=state, entry_points=False) as host:
        assert await host.call("acme.hog", "read", name="before.txt") == "before the kill"
    assert quota.mount_source(data_dir) is None
    assert quota.loop_devices_of(quota.image_path(data_dir)) == []


async def test_doctor_says_what_enforces_the_storage_quota() -> None:
    def doctor(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "plugbay.cli", "doctor", *args],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout

    report = json.loads(await asyncio.to_thread(doctor, "--json"))
    assert report["storage_quota"]["enforced_by"] == (
        "enforced by the kernel (loop-mounted ext4 image)"
    )
    text = await asyncio.to_thread(doctor)
    assert "storage quota: enforced by the kernel (loop-mounted ext4 image)" in text


async def test_without_loop_devices_the_quota_is_sampled_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unavailable = quota.QuotaStatus(False, "no /dev/loop-control (as in a container)")
    monkeypatch.setattr(quota, "probe", lambda **_: unavailable)
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.hog", HOG, extra=LIMITS)
    async with Host(factory.root, state_dir=tmp_path / "state", entry_points=False) as host:
        data_dir = tmp_path / "state" / "data" / "acme.hog"
        assert quota.mount_source(data_dir) is None
        assert host.info("acme.hog")["usage"]["storage_quota"] == "sampled"
        # sampled, one file at least is kept within the quota (file-size clamped to it)
        assert await host.call("acme.hog", "fallocate", size=32 * MiB) == "EFBIG"


async def test_a_plain_directory_larger_than_the_quota_is_kept_and_sampled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.hog", HOG, extra=LIMITS)
    data_dir = tmp_path / "state" / "data" / "acme.hog"
    data_dir.mkdir(parents=True)
    (data_dir / "big.bin").write_bytes(os.urandom(12 * MiB))  # more than the 8 MiB quota
    async with Host(factory.root, state_dir=tmp_path / "state", entry_points=False) as host:
        assert host.info("acme.hog")["usage"]["storage_quota"] == "sampled"
        assert (data_dir / "big.bin").stat().st_size == 12 * MiB  # nothing lost
        assert not quota.image_path(data_dir).exists()
        assert not quota.image_path(data_dir).with_suffix(".new").exists()
    assert any("does not fit in its storage quota" in r.getMessage() for r in caplog.records)


async def test_a_lowered_quota_shrinks_the_image_only_as_far_as_the_data_allows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    directory = factory("acme.hog", HOG, extra=LIMITS.replace('"8MiB"', '"16MiB"'))
    state = tmp_path / "state"
    manifest = directory / "plugin.toml"
    image = quota.image_path(state / "data" / "acme.hog")
    async with Host(factory.root, state_dir=state, entry_points=False) as host:
        await host.call("acme.hog", "keep", name="note.txt", text="small")
    manifest.write_text(manifest.read_text().replace('"16MiB"', '"8MiB"'))
    async with Host(factory.root, state_dir=state, entry_points=False) as host:
        assert image.stat().st_size == 8 * MiB  # the data fits: shrunk
        assert await host.call("acme.hog", "read", name="note.txt") == "small"
        assert (await host.call("acme.hog", "small_files")).startswith("ENOSPC")
    manifest.write_text(manifest.read_text().replace('"8MiB"', '"4MiB"'))
    async with Host(factory.root, state_dir=state, entry_points=False) as host:
        assert image.stat().st_size == 8 * MiB  # ~8 MiB of data: kept, never dropped
        assert await host.call("acme.hog", "read", name="note.txt") == "small"
        assert host.info("acme.hog")["usage"]["storage_quota"] == (
            "enforced by the kernel (loop-mounted ext4 image)"
        )
    assert any("could not be resized and keeps 8 MiB" in r.getMessage() for r in caplog.records)


async def test_a_state_directory_with_spaces_and_accents_is_mounted_and_released(
    tmp_path: Path,
) -> None:
    factory = PluginFactory(tmp_path / "plugins")
    factory("acme.hog", HOG, extra=LIMITS)
    state = tmp_path / "état du hôte"
    data_dir = state / "data" / "acme.hog"
    async with Host(factory.root, state_dir=state, entry_points=False) as host:
        assert quota.mount_source(data_dir) is not None
        assert (await host.call("acme.hog", "small_files")).startswith("ENOSPC")
        within_quota(Arena(host, state), "acme.hog", QUOTA)
    await unmounted(data_dir)
