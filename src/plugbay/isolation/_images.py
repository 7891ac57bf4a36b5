"""A storage image's empty ext4 filesystem, written from a template instead of by ``mkfs.ext4``.

``mkfs.ext4`` checks that its target is not mounted by reading ``/proc/mounts``
and looking at the device of every line: with a thousand sandboxed plugins'
images mounted, each new image cost the next plugin's start a process whose
work grew with the images already mounted (15 ms with none, 65 ms at a
thousand, in system time mostly). An empty filesystem of a given size is the
same bytes each time but for its identity, so ``mkfs.ext4`` runs once per size
(into a scratch file beside the images), the few blocks it wrote (some 190 KiB
of a 256 MiB image: superblock, group descriptors, bitmaps, the root directory)
are kept in memory, and each new image is a sparse file of that size with those
blocks written into it, then given a UUID and hash seed of its own.

A new identity needs ``metadata_csum_seed`` (the checksums of the filesystem's
metadata are seeded from a stored value, not from the UUID), which the template
is made with; only the superblock changes then, and its own checksum (CRC32C)
is written again. Where the template cannot be made so (an older ``mkfs.ext4``,
a filesystem that cannot say where a sparse file's data is), each image is made
by ``mkfs.ext4`` as before.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["crc32c", "make_image", "mkfs_options"]

#: below this an ext4 journal does not fit: the image goes without one
JOURNAL_FROM: Final = 64 << 20


def mkfs_options(size: int) -> list[str]:
    """``mkfs.ext4``'s options for an image of ``size`` bytes."""
    # the file was just made, all holes: nothing to discard, and its journal reads as zeros
    # without being written (4 MiB a new image wrote, and half of mkfs's time)
    extended = "root_owner=0:0,lazy_journal_init=1,nodiscard"
    options = ["-q", "-F", "-m", "0", "-T", "default", "-E", extended]
    return options + (["-J", "size=4"] if size >= JOURNAL_FROM else ["-O", "^has_journal"])


# --- the superblock ------------------------------------------------------------------

_SUPER: Final = 1024  # the primary superblock's offset, and its size
_UUID: Final = 0x68
_HASH_SEED: Final = 0xEC
_CHECKSUM: Final = 0x3FC
_INCOMPAT: Final = 0x60
_RO_COMPAT: Final = 0x64
_CSUM_SEED: Final = 0x2000  # incompat: metadata checksums seeded from s_checksum_seed
_METADATA_CSUM: Final = 0x400  # ro_compat
_GDT_CSUM: Final = 0x10  # ro_compat: group descriptors' CRC16 over the UUID


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE: Final = _crc_table()


def crc32c(data: bytes, crc: int = 0xFFFFFFFF) -> int:
    """CRC32C (Castagnoli) as ext4 keeps it: seeded with ~0, not inverted at the end."""
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _renamable(superblock: bytes) -> bool:
    """Whether a new UUID leaves every checksum of the filesystem right but the superblock's."""
    (incompat,) = struct.unpack_from("<I", superblock, _INCOMPAT)
    (ro_compat,) = struct.unpack_from("<I", superblock, _RO_COMPAT)
    return bool(incompat & _CSUM_SEED) or not ro_compat & (_METADATA_CSUM | _GDT_CSUM)


def _new_identity(superblock: bytes) -> bytes:
    """The superblock with a UUID and a directory hash seed of its own, checksummed again."""
    block = bytearray(superblock)
    block[_UUID : _UUID + 16] = uuid.uuid4().bytes
    block[_HASH_SEED : _HASH_SEED + 16] = uuid.uuid4().bytes
    (ro_compat,) = struct.unpack_from("<I", block, _RO_COMPAT)
    if ro_compat & _METADATA_CSUM:
        struct.pack_into("<I", block, _CHECKSUM, crc32c(bytes(block[:_CHECKSUM])))
    return bytes(block)


# --- templates -----------------------------------------------------------------------

#: per image size: the blocks mkfs wrote, (offset, bytes); None: no template, mkfs each time
_templates: dict[int, tuple[tuple[int, bytes], ...] | None] = {}
_lock = threading.Lock()


def _written(fd: int) -> tuple[tuple[int, bytes], ...] | None:
    """The data of a sparse file, extent by extent; None where holes cannot be found."""
    extents = []
    end, offset = os.fstat(fd).st_size, 0
    while offset < end:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:  # ENXIO: no data past offset; else: not supported here
            if exc.errno == errno.ENXIO:
                break
            return None
        stop = os.lseek(fd, start, os.SEEK_HOLE)
        extents.append((start, os.pread(fd, stop - start, start)))
        offset = stop
    if not extents or extents[0][0] > _SUPER or len(extents[0][1]) < 2 * _SUPER - extents[0][0]:
        return None  # no superblock where it belongs: not what this module understands
    return tuple(extents)


def _template(
    where: Path, size: int, mkfs: Callable[[list[str]], None]
) -> tuple[tuple[int, bytes], ...] | None:
    with _lock:
        if size in _templates:
            return _templates[size]
        # The scratch file loses its name at once, and mkfs writes it through the host's
        # descriptor: a host killed while mkfs runs leaves no file of a size's worth of
        # holes beside the images (it did, for every later start to step over).
        fd, name = tempfile.mkstemp(prefix=".template-", suffix=".ext4", dir=where)
        try:
            os.unlink(name)
            os.ftruncate(fd, size)
            try:
                mkfs(
                    [
                        *mkfs_options(size),
                        "-O",
                        "metadata_csum_seed",
                        f"/proc/{os.getpid()}/fd/{fd}",
                    ]
                )
            except Exception:  # an older mkfs.ext4: each image is made by it, as before
                found = None
            else:
                found = _written(fd)
            if found is not None and not _renamable(_superblock(found)):
                found = None
        finally:
            os.close(fd)
        _templates[size] = found
        return found


def _superblock(extents: tuple[tuple[int, bytes], ...]) -> bytes:
    start, data = extents[0]
    return data[_SUPER - start : 2 * _SUPER - start]


def make_image(image: Path, size: int, mkfs: Callable[[list[str]], None]) -> None:
    """An empty ext4 filesystem of ``size`` bytes in a new sparse file ``image``, with an
    identity of its own; ``mkfs(argv)`` runs ``mkfs.ext4`` with these arguments (for the
    template, or for this image when there is none). The file is removed if this fails."""
    image.parent.mkdir(parents=True, exist_ok=True)
    template = _template(image.parent, size, mkfs)
    try:
        with open(image, "wb") as f:
            f.truncate(size)
            if template is not None:
                for offset, data in template:
                    os.pwrite(f.fileno(), data, offset)
                os.pwrite(f.fileno(), _new_identity(_superblock(template)), _SUPER)
        if template is None:
            mkfs([*mkfs_options(size), str(image)])
    except BaseException:
        with contextlib.suppress(OSError):
            image.unlink()
        raise
