"""The storage quota, enforced by the kernel: a per-plugin ext4 image mounted at its data directory.

A sandboxed plugin's data directory is the mount point of a filesystem image
of exactly its quota's size (``<data root>/.quota/<plugin id>.ext4``), loop-mounted
by the host before the worker starts. Every way of taking space — ``write``,
``fallocate``, sparse files filled in, many small files (blocks and inodes),
hard links, files kept open after their last name is gone — is then allocated
inside that filesystem, and the kernel answers ``ENOSPC`` at the write that
would not fit: the plugin sees an ``OSError`` it can handle, nothing is
sampled, nothing overshoots. The image is sparse and mounted with ``discard``,
so on the host's disk it takes what the plugin keeps, never more than its size.

The image outlives the mount: unmounted (and its loop device freed) when the
last worker of the plugin has exited, mounted again — same image, same data —
when the plugin starts again. A changed quota resizes it (``resize2fs``; a
smaller quota than the data needs keeps the old size, with a warning). A plain
data directory (from a plugbay before this one, or written while the mechanism
was unavailable) is copied into the image on first use and then emptied.

Where it cannot work (not root, no loop devices, no ``mkfs.ext4``) :func:`probe`
says why, and the process backend falls back to measuring the directory twice
a second (the old way, which can overshoot between two measures).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from plugbay.api.errors import PlugbayError
from plugbay.isolation import _images, _loop
from plugbay.model.sizes import size_text

__all__ = [
    "MECHANISM",
    "QuotaMounts",
    "QuotaStatus",
    "QuotaUnavailable",
    "image_path",
    "loop_devices_of",
    "mount_source",
    "probe",
]

log = logging.getLogger("plugbay.isolation.quota")

MiB: Final = 1 << 20
MECHANISM: Final = "loop-mounted ext4 image"
#: the smallest image mkfs.ext4 makes (a smaller quota still gets this much, documented)
_SMALLEST: Final = 2 * MiB
_TOOLS: Final = ("mkfs.ext4", "mount", "umount", "losetup", "e2fsck", "resize2fs")
_MOUNT_OPTIONS: Final = "loop,nosuid,nodev,discard"


class QuotaUnavailable(PlugbayError):
    """The kernel cannot enforce a storage quota here (or not for this data directory).

    The host then samples the directory instead; the message says why.
    """

    code = "quota_unavailable"


@dataclass(frozen=True)
class QuotaStatus:
    """What enforces the storage quota on this machine: the ``plugbay doctor`` line."""

    enforced: bool
    detail: str

    @property
    def mechanism(self) -> str:
        return f"enforced by the kernel ({MECHANISM})" if self.enforced else "sampled"


def image_path(data_dir: Path) -> Path:
    """Where a data directory's image lives: beside the data directories, never inside one."""
    return data_dir.parent / ".quota" / f"{data_dir.name}.ext4"


def _run(*argv: str, timeout: float = 60, ok: tuple[int, ...] = (0,)) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QuotaUnavailable(f"running {argv[0]} failed: {exc}") from exc
    if done.returncode not in ok:
        output = (done.stderr or done.stdout).strip().splitlines()
        raise QuotaUnavailable(
            f"{' '.join(argv[:2])} … exited with {done.returncode}: "
            f"{output[-1] if output else 'no output'}"
        )


def _missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "the host does not run as root (mounting a filesystem image needs it)"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control: this kernel or container offers no loop devices"
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (e2fsprogs and util-linux)"
    return None


_probed: QuotaStatus | None = None
_probe_lock = threading.Lock()


def probe(*, fresh: bool = False) -> QuotaStatus:
    """Whether the kernel can enforce the storage quota here: a 2 MiB image is made,
    mounted, filled until ENOSPC, unmounted and removed (the answer is cached)."""
    global _probed
    with _probe_lock:
        if _probed is not None and not fresh:
            return _probed
        why = _missing_requirement()
        if why is not None:
            _probed = QuotaStatus(False, why)
            return _probed
        try:
            with tempfile.TemporaryDirectory(prefix="plugbay-quota-probe-") as tmp:
                data = Path(tmp) / "data"
                data.mkdir()
                _make_image(image_path(data), _SMALLEST)
                _mount(image_path(data), data)
                try:
                    refused = _fill(data / "fill")
                finally:
                    _umount(data)
        except (QuotaUnavailable, OSError) as exc:
            _probed = QuotaStatus(False, f"a test image could not be used: {exc}")
            return _probed
        if not refused:
            _probed = QuotaStatus(False, "a full test image did not refuse a write")
        else:
            _probed = QuotaStatus(
                True,
                f"each sandboxed plugin's data directory is an ext4 image of its quota's size, "
                f"mounted by the host; the kernel refuses a write past it with {refused}",
            )
        return _probed


def _fill(path: Path) -> str | None:
    chunk = b"\0" * MiB
    try:
        with open(path, "wb") as f:
            for _ in range(2 * _SMALLEST // MiB + 1):
                f.write(chunk)
                f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return None


# --- mounts -------------------------------------------------------------------------------


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (space, tab, newline, backslash); the rest is UTF-8 as is."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mount_source(path: Path) -> str | None:
    """The device mounted at ``path`` (the last mount there), or None when it is no mount point."""
    wanted = os.path.realpath(path)
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and _unescape(fields[4]) == wanted:
                found = right.split()[1] if len(right.split()) > 1 else "?"
    return found


def loop_devices_of(image: Path) -> list[str]:
    """Loop devices backed by ``image`` now (what a leak test checks is empty)."""
    wanted = os.path.realpath(image)
    devices = []
    with contextlib.suppress(OSError):
        for name in os.listdir("/sys/block"):
            if not name.startswith("loop"):
                continue
            try:
                backing = Path(f"/sys/block/{name}/loop/backing_file").read_text().strip()
            except OSError:
                continue
            if backing.removesuffix(" (deleted)") == wanted:
                devices.append(f"/dev/{name}")
    return devices


def _size_for(quota: int) -> int:
    return max(_SMALLEST, quota - quota % 4096)


def _make_image(image: Path, size: int) -> None:
    """An empty ext4 image of ``size`` bytes: written from a template ``mkfs.ext4`` made
    once per size, with its own UUID (``isolation._images``)."""
    _images.make_image(image, size, lambda argv: _run("mkfs.ext4", *argv))


def _mount(image: Path, target: Path) -> None:
    try:  # in-process (``isolation._loop``): a few system calls, whatever is mounted
        _loop.mount_image(str(image), str(target))
    except _loop.LoopUnavailable as exc:
        log.debug("mounting %s with the tools: %s", image, exc)
        _mount_with_tools(image, target)
    except OSError as exc:
        raise QuotaUnavailable(f"mounting {image} failed: {exc}") from exc
    lost = target / "lost+found"
    with contextlib.suppress(OSError):  # not part of the plugin's data; e2fsck makes it again
        if not any(lost.iterdir()):
            lost.rmdir()


def _mount_with_tools(image: Path, target: Path) -> None:
    _run("mount", "-t", "ext4", "-o", _MOUNT_OPTIONS, str(image), str(target))
    device = _loop.device_of(str(target))
    if device is not None:
        # direct I/O: the image's pages are cached once (by ext4), not twice (the loop
        # device's backing file too): an fsync'd write costs what it costs outside
        with contextlib.suppress(QuotaUnavailable):
            _run("losetup", "--direct-io=on", device)


def _mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point: from mount ids (a few system calls), else from
    ``/proc/self/mountinfo`` (a line per mount)."""
    point = _loop.is_mount_point(str(path))
    return mount_source(path) is not None if point is None else point


def _umount(target: Path) -> None:
    device = _loop.device_of(str(target)) if _mounted(target) else None
    try:  # in-process (``isolation._loop``): no process started beside other mounts
        gone = _loop.unmount(str(target))
    except OSError as exc:
        log.debug("unmounting %s with the tools: %s", target, exc)
        gone = _umount_with_tools(target)
    if not gone:
        return
    # the device clears itself; the kernel may do it a moment later, so it is let go
    # here, at once (quiet when it is already free)
    if device is not None and Path(f"/sys/block/{Path(device).name}/loop/backing_file").exists():
        _loop.detach(device)


def _umount_with_tools(target: Path) -> bool:
    try:
        _run("umount", str(target))
    except QuotaUnavailable:
        # busy (a file still open there): detach now; the loop device, set to clear
        # itself, is freed when the last file closes
        _run("umount", "-l", str(target))
        return False
    return True


def _resize(image: Path, size: int, plugin: str) -> None:
    """Offline: the image to ``size``. A resize that fails (a shrink the data does not
    allow) keeps the image as it is, with a warning: its data is never put aside."""
    current = image.stat().st_size
    if current == size:
        return
    try:
        _run("e2fsck", "-f", "-p", str(image), ok=(0, 1))  # 1: something was fixed
        if size > current:
            with open(image, "r+b") as f:
                f.truncate(size)
        try:
            _run("resize2fs", str(image), f"{size // 1024}K")
        except QuotaUnavailable:
            if size > current:
                raise
            # resize2fs keeps the metadata laid out for the old size (an empty 256 MiB
            # image cannot go below 8.3 MiB): a new image of the size, the data copied in
            _rebuild(image, size)
            return
    except QuotaUnavailable as exc:
        log.warning(
            "plugin '%s': its storage quota changed to %s, but its image could not be "
            "resized and keeps %s (%s)",
            plugin, size_text(size), size_text(current), exc.message,
        )  # fmt: skip
        if size > current:  # the file grew, the filesystem did not: give the room back
            with contextlib.suppress(OSError), open(image, "r+b") as f:
                f.truncate(current)
        return
    if size < current:
        with open(image, "r+b") as f:
            f.truncate(size)


def _has_entries(path: Path) -> bool:
    with os.scandir(path) as entries:
        return any(True for _ in entries)


def _rebuild(image: Path, size: int) -> None:
    """Shrink ``image`` to ``size`` by copying its data into a new image of that size,
    which then takes its place; :class:`QuotaUnavailable` (the old image untouched) when
    the data does not fit. Until the rename the old image is whole, so a crash loses
    nothing (the next start tries again)."""
    smaller, reading = image.with_suffix(".smaller"), image.with_suffix(".reading")
    smaller.unlink(missing_ok=True)  # left by a crash: it was never the image
    _make_image(smaller, size)
    reading.mkdir(exist_ok=True)
    try:
        _mount(image, reading)
        try:
            _copy_into(smaller, reading)
        finally:
            _umount(reading)
        os.replace(smaller, image)
    finally:
        smaller.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            reading.rmdir()


def _absorb(image: Path, data_dir: Path) -> None:
    """Copy what a plain data directory holds into the image, then empty the directory.

    The copy goes to a staging mount point; the directory is emptied only once the
    copy is on the image's disk, so a crash in between loses nothing (the next start
    copies again, over what is there)."""
    _copy_into(image, data_dir)
    for entry in list(data_dir.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _copy_into(image: Path, data_dir: Path) -> None:
    """Copy what ``data_dir`` holds into the image, synced to its disk."""
    staging = image.with_suffix(".migrating")
    staging.mkdir(exist_ok=True)
    _mount(image, staging)
    try:
        try:
            shutil.copytree(data_dir, staging, symlinks=True, dirs_exist_ok=True)
        except (OSError, shutil.Error) as exc:
            raise QuotaUnavailable(
                f"its data directory {data_dir} does not fit in its storage quota "
                f"({size_text(image.stat().st_size)}): {exc}",
                hint="raise resources.storage in the manifest, or remove data from the "
                "directory; until then the quota is sampled",
            ) from exc
        os.sync()
    finally:
        _umount(staging)
        with contextlib.suppress(OSError):
            staging.rmdir()


#: the janitor's whole program: the standard library only, so that it starts in a few
#: milliseconds (``python -I -S``) instead of importing plugbay beside a starting host
_JANITOR: Final = """
import json, subprocess, sys
mounted = set()
for line in sys.stdin:
    try:
        message = json.loads(line)
        (mounted.add if message["op"] == "mount" else mounted.discard)(message["path"])
    except (ValueError, KeyError, TypeError):
        pass
for path in mounted:
    try:
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        pass
"""


def janitor_main() -> None:
    """The janitor: unmounts what the host mounted, should the host die without doing it.

    A separate small process (its own session, so a Ctrl-C for the host does not
    reach it) reads, on a pipe from the host, one JSON line per mount and unmount.
    The pipe's end is the host's death, however it died (``kill -9`` included): the
    janitor then detaches every image still mounted (``umount -l``: a worker may
    still hold a file for a moment; its loop device clears itself once none does).
    """
    exec(compile(_JANITOR, "<plugbay janitor>", "exec"), {"__name__": "__janitor__"})


class _Janitor:
    """The host's end of the janitor (started with the first mount)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def tell(self, op: str, path: Path) -> None:
        import json
        import sys

        if self._proc is None or self._proc.poll() is not None:
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _JANITOR],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):
            self._proc.stdin.write(json.dumps({"op": op, "path": str(path)}).encode() + b"\n")
            self._proc.stdin.flush()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class QuotaMounts:
    """The host's mounted images, counted per data directory.

    Every worker of a plugin holds its data directory's mount (a reload starts the
    new worker before the old one is gone); the last one to exit unmounts it. A
    janitor process, started with the first mount and kept until :meth:`close`,
    unmounts what is left should the host die first.
    Thread-safe: mounting runs off the event loop.
    """

    def __init__(self) -> None:
        #: guards the tables and the janitor; each data directory has its own lock for
        #: making and mounting its image, so plugins starting together do it side by side
        self._lock = threading.Lock()
        self._holders: dict[Path, int] = {}
        self._dir_locks: dict[Path, threading.Lock] = {}
        self._janitor = _Janitor()

    def _lock_for(self, data_dir: Path) -> threading.Lock:
        with self._lock:
            return self._dir_locks.setdefault(data_dir, threading.Lock())

    def mounted(self) -> list[Path]:
        with self._lock:
            return list(self._holders)

    def attach(self, data_dir: Path, quota: int, plugin: str) -> None:
        """Mount the image of ``quota`` bytes at ``data_dir`` (made, migrated, resized as needed).

        Raises :class:`QuotaUnavailable` when the kernel cannot enforce it here."""
        status = probe()
        if not status.enforced:
            raise QuotaUnavailable(status.detail)
        data_dir = Path(os.path.realpath(data_dir))
        image = image_path(data_dir)
        size = _size_for(quota)
        with self._lock_for(data_dir):
            with self._lock:
                held = self._holders.get(data_dir, 0)
                if held:
                    self._holders[data_dir] = held + 1
                    return
            data_dir.mkdir(parents=True, exist_ok=True)
            if _mounted(data_dir):
                # mounted by a host that did not stop cleanly: ours if it is this image
                if not loop_devices_of(image):
                    raise QuotaUnavailable(
                        f"{data_dir} is already a mount point, not of its image {image}",
                        hint="unmount it ('umount DIR') and start the plugin again",
                    )
                _umount(data_dir)
            fresh = not image.exists()
            if fresh:
                staging = image.with_suffix(".new")
                _make_image(staging, size)
                if _has_entries(data_dir):
                    try:
                        _absorb(staging, data_dir)
                    except QuotaUnavailable:
                        staging.unlink(missing_ok=True)
                        raise
                staging.rename(image)  # the commit point of a migration
            else:
                _resize(image, size, plugin)
                if _has_entries(data_dir):  # written while the image was not mounted
                    _absorb(image, data_dir)
            with self._lock:
                self._janitor.tell("mount", data_dir)  # before: a death in between is covered
            _mount(image, data_dir)
            with self._lock:
                self._holders[data_dir] = 1
        if fresh:
            log.info("plugin '%s': storage quota of %s in %s", plugin, size_text(size), image)

    def prepare(self, data_dir: Path, quota: int, plugin: str) -> None:
        """Make the image of ``quota`` bytes for ``data_dir`` now, unmounted, so that a later
        :meth:`attach` only mounts it (a plugin waiting for its dependencies has its image
        made meanwhile). Nothing is done where it exists, where the directory holds data
        to migrate (attach does that), or where the kernel cannot enforce a quota."""
        if not probe().enforced:
            return
        data_dir = Path(os.path.realpath(data_dir))
        image = image_path(data_dir)
        size = _size_for(quota)
        with self._lock_for(data_dir):
            with self._lock:
                if self._holders.get(data_dir):
                    return
            if image.exists() or (data_dir.is_dir() and _has_entries(data_dir)):
                return
            data_dir.mkdir(parents=True, exist_ok=True)
            staging = image.with_suffix(".new")
            _make_image(staging, size)
            staging.rename(image)
        log.info("plugin '%s': storage quota of %s in %s", plugin, size_text(size), image)

    def detach(self, data_dir: Path) -> None:
        """One holder fewer; the last one unmounts the image and frees its loop device."""
        data_dir = Path(os.path.realpath(data_dir))
        with self._lock_for(data_dir):
            with self._lock:
                held = self._holders.get(data_dir, 0)
                if held > 1:
                    self._holders[data_dir] = held - 1
                    return
                if not held:
                    return
                del self._holders[data_dir]
            try:
                _umount(data_dir)
            except QuotaUnavailable as exc:
                log.warning("could not unmount the storage image at %s: %s", data_dir, exc)
                unmounted = False
            else:
                unmounted = True
            with self._lock:
                if unmounted:
                    self._janitor.tell("umount", data_dir)
                # the janitor stays, idle, until close(): one started for the next mount
                # ran beside that mount(2), which then took 10 ms instead of 1

    def close(self) -> None:
        """Unmount every image still mounted (the host is stopping)."""
        with self._lock:
            held, self._holders = list(self._holders), {}
        for data_dir in held:
            try:
                _umount(data_dir)
            except QuotaUnavailable as exc:
                log.warning("could not unmount the storage image at %s: %s", data_dir, exc)
            else:
                self._janitor.tell("umount", data_dir)
        self._janitor.close()
