"""Loop devices and mounts made in the host's own process, for the storage images.

``mount -o loop`` and ``losetup`` each cost a process, and util-linux reads
``/proc/self/mountinfo`` and scans every loop device to check for overlaps: with
a thousand images mounted, mounting the next one took 50 ms and grew with their
number. Here the same steps are a few system calls whose cost does not depend on
how many images are mounted:

* ``LOOP_CTL_GET_FREE`` on ``/dev/loop-control`` names a free device, and
  ``LOOP_CONFIGURE`` (Linux 5.8) binds the image to it in one step, with direct
  I/O (the image's pages are cached once, by ext4) and autoclear (the device frees
  itself when its mount is gone, or when the host dies before it mounted);
* ``mount(2)`` mounts it ``nosuid,nodev`` with ``discard``, and ``umount2(2)``
  unmounts it (lazily when a file is still open there);
* the device of a mount point is read from ``stat`` and ``/sys/dev/block``, and
  whether a directory is a mount point from the mount ids in ``/proc/self/fdinfo``.

Where one of these is refused (an older kernel, a device taken by another process
at the same moment too often) :class:`LoopUnavailable` says so and the caller uses
the tools as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import struct
from typing import Final

__all__ = ["LoopUnavailable", "detach", "device_of", "is_mount_point", "mount_image", "unmount"]

_LOOP_CTL_GET_FREE: Final = 0x4C82
_LOOP_CONFIGURE: Final = 0x4C0A
_LOOP_CLR_FD: Final = 0x4C01
_LO_FLAGS_AUTOCLEAR: Final = 4
_LO_FLAGS_DIRECT_IO: Final = 16
_MS_NOSUID: Final = 2
_MS_NODEV: Final = 4
_MNT_DETACH: Final = 2
_LOOP_MAJOR: Final = 7
#: struct loop_config: fd, block_size, then struct loop_info64 (5 u64, 4 u32, file name,
#: crypt name, key, 2 u64 init), then 8 reserved u64
_CONFIG: Final = struct.Struct("=II QQQQQ IIII 64s 64s 32s 2Q 8Q")
#: attempts when another process takes the free device first
_TRIES: Final = 8


class LoopUnavailable(Exception):
    """The in-process way cannot be used here; the message says why (the tools still may)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _configure(image_fd: int, image: str) -> tuple[int, str]:
    """A free loop device bound to the image: (its open descriptor, its path)."""
    control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(_TRIES):
            number = fcntl.ioctl(control, _LOOP_CTL_GET_FREE)
            path = f"/dev/loop{number}"
            try:
                device = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:  # no device node (no udev): it is made here
                with contextlib.suppress(FileExistsError):
                    os.mknod(path, 0o660 | 0o060000, os.makedev(_LOOP_MAJOR, number))
                device = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            flags = _LO_FLAGS_AUTOCLEAR | _LO_FLAGS_DIRECT_IO
            name = os.fsencode(image)[-63:]
            config = _CONFIG.pack(image_fd, 0, *([0] * 5), number, 0, 0, flags, name,
                                  b"", b"", 0, 0, *([0] * 8))  # fmt: skip
            try:
                fcntl.ioctl(device, _LOOP_CONFIGURE, config)
            except OSError as exc:
                os.close(device)
                if exc.errno == errno.EBUSY:  # taken by another process meanwhile
                    continue
                raise LoopUnavailable(f"LOOP_CONFIGURE on {path}: {exc.strerror}") from exc
            return device, path
    finally:
        os.close(control)
    raise LoopUnavailable(f"no free loop device after {_TRIES} tries")


def mount_image(image: str, target: str, options: str = "discard") -> str:
    """Mount the ext4 ``image`` at ``target`` (nosuid, nodev, ``options``) through a loop
    device with direct I/O; the device's path. Raises :class:`LoopUnavailable` when the
    in-process way is refused before anything was mounted, ``OSError`` when the mount
    itself fails (a damaged image, say)."""
    try:
        image_fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise LoopUnavailable(f"cannot open {image}: {exc.strerror}") from exc
    try:
        try:
            device, path = _configure(image_fd, image)
        except OSError as exc:  # no loop-control, ioctl unknown (a kernel before 5.8)
            raise LoopUnavailable(f"loop device: {exc.strerror or exc}") from exc
    finally:
        os.close(image_fd)
    try:
        libc = _libc()
        done = libc.mount(
            os.fsencode(path), os.fsencode(target), b"ext4",
            ctypes.c_ulong(_MS_NOSUID | _MS_NODEV), options.encode(),
        )  # fmt: skip
        if done != 0:
            code = ctypes.get_errno()
            with contextlib.suppress(OSError):
                fcntl.ioctl(device, _LOOP_CLR_FD)
            raise OSError(code, f"mount {path} at {target}: {os.strerror(code)}")
    finally:
        os.close(device)  # the mount holds the device now; autoclear frees it after
    return path


def unmount(target: str) -> bool:
    """Unmount ``target``: True when it is gone at once, False when it was busy (a file
    still open there) and is only detached, gone once the last file closes. ``OSError``
    when neither can be done (not a mount point, say)."""
    libc, path = _libc(), os.fsencode(target)
    if libc.umount2(path, 0) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EBUSY and libc.umount2(path, _MNT_DETACH) == 0:
        return False
    code = ctypes.get_errno() if code == errno.EBUSY else code
    raise OSError(code, f"umount {target}: {os.strerror(code)}")


def detach(device: str) -> None:
    """Let a loop device go now (the kernel's autoclear may take a moment); quiet when it
    is already free."""
    with contextlib.suppress(OSError):
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, _LOOP_CLR_FD)
        finally:
            os.close(fd)


def _mount_id(path: str) -> int | None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    finally:
        os.close(fd)
    return None


def is_mount_point(path: str) -> bool | None:
    """Whether ``path`` is a mount point (a bind mount too); None when it cannot be told
    this way (no mount ids in fdinfo)."""
    real = os.path.realpath(path)
    try:
        own, parent = _mount_id(real), _mount_id(os.path.dirname(real))
    except OSError:
        return False
    if own is None or parent is None:
        return None
    return own != parent


def device_of(path: str) -> str | None:
    """The loop device whose filesystem holds ``path``, or None for any other device."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if os.major(st.st_dev) != _LOOP_MAJOR:
        return None
    block = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    name = os.path.basename(os.path.realpath(block))
    return f"/dev/{name}" if name.startswith("loop") else None
