"""Storage images written from a template (isolation/_images.py): each one a clean ext4
filesystem of its size with an identity of its own, mkfs.ext4 run once per size; where the
template cannot be made, each image is made by mkfs.ext4 as before."""

from __future__ import annotations

import ast
import errno
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugbay.isolation import _images, _loop, quota
from tests._waiting import until_sync

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    shutil.which("mkfs.ext4") is None or shutil.which("e2fsck") is None,
    reason="needs e2fsprogs (mkfs.ext4, e2fsck)",
)


#: mounting an image needs root and the kernel's loop devices
needs_loop_devices = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/loop-control"),
    reason="needs root and loop devices",
)


@pytest.fixture(autouse=True)
def fresh_templates() -> Iterator[None]:
    saved = dict(_images._templates)
    _images._templates.clear()
    yield
    _images._templates.clear()
    _images._templates.update(saved)


class Mkfs:
    """mkfs.ext4, counted; ``refuse``: an option it does not know (an older mkfs.ext4)."""

    def __init__(self, refuse: str | None = None) -> None:
        self.runs: list[list[str]] = []
        self.refuse = refuse

    def __call__(self, argv: list[str]) -> None:
        self.runs.append(argv)
        if self.refuse is not None and self.refuse in argv:
            raise quota.QuotaUnavailable(f"mkfs.ext4: invalid filesystem option '{self.refuse}'")
        subprocess.run(["mkfs.ext4", *argv], check=True, capture_output=True)


def clean(image: Path) -> str:
    done = subprocess.run(["e2fsck", "-f", "-n", str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def uuid_of(image: Path) -> bytes:
    with open(image, "rb") as f:
        f.seek(1024 + 0x68)
        return f.read(16)


def fill(path: Path, size: int) -> int | None:
    """Write ``size`` bytes, durably; the errno of the write refused, or None."""
    try:
        with open(path, "wb") as f:
            for _ in range(size // MiB):
                f.write(b"\1" * MiB)
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        return exc.errno
    return None


def test_crc32c_is_the_castagnoli_checksum_as_ext4_keeps_it() -> None:
    # the check value of CRC-32C is 0xE3069283; ext4 keeps it without the final inversion
    assert _images.crc32c(b"123456789") ^ 0xFFFFFFFF == 0xE3069283


@pytest.mark.parametrize("size", [8 * MiB, 96 * MiB])  # without a journal, and with one
def test_images_are_clean_filesystems_of_their_size_each_with_its_own_uuid(
    tmp_path: Path, size: int
) -> None:
    mkfs = Mkfs()
    images = [tmp_path / f"p{i}.ext4" for i in range(3)]
    for image in images:
        _images.make_image(image, size, mkfs)
    assert len(mkfs.runs) == 1  # the template's; the images are written from it
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".template-")]
    for image in images:
        assert image.stat().st_size == size
        assert image.stat().st_blocks * 512 < 2 * MiB  # sparse: the metadata only
        assert f"/{size // 4096} blocks" in clean(image)
    assert len({uuid_of(image) for image in images}) == 3


def kept_at_the_next_mount(data: Path, name: str) -> str:
    """What ``name`` holds once ``data``'s image is mounted again, by a new QuotaMounts."""
    mounts = quota.QuotaMounts()
    mounts.attach(data, 4 * MiB, "acme.one")
    try:
        return (data / name).read_text()
    finally:
        mounts.close()


@needs_loop_devices
def test_a_templated_image_mounts_keeps_data_and_refuses_a_write_past_its_size(
    tmp_path: Path,
) -> None:
    mounts = quota.QuotaMounts()
    data = tmp_path / "data" / "acme.one"
    mounts.attach(data, 4 * MiB, "acme.one")
    try:
        (data / "kept.txt").write_text("kept")
        assert fill(data / "fill", 8 * MiB) == errno.ENOSPC
    finally:
        mounts.close()
    clean(quota.image_path(Path(os.path.realpath(data))))
    assert kept_at_the_next_mount(data, "kept.txt") == "kept"


def test_the_templates_scratch_file_has_no_name_while_mkfs_writes_it(tmp_path: Path) -> None:
    """A host killed while mkfs writes the template leaves nothing in the images' directory:
    the scratch file has no name there by then."""
    seen: list[list[str]] = []

    def mkfs(argv: list[str]) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        Mkfs()(argv)

    _images.make_image(tmp_path / "p0.ext4", 8 * MiB, mkfs)
    assert seen == [[]]  # nothing there while mkfs ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0.ext4"]
    assert f"/{8 * MiB // 4096} blocks" in clean(tmp_path / "p0.ext4")


def test_without_metadata_csum_seed_each_image_is_made_by_mkfs(tmp_path: Path) -> None:
    mkfs = Mkfs(refuse="metadata_csum_seed")
    images = [tmp_path / f"p{i}.ext4" for i in range(2)]
    for image in images:
        _images.make_image(image, 8 * MiB, mkfs)
    assert len(mkfs.runs) == 3  # the template tried once, then each image
    for image in images:
        clean(image)
    assert uuid_of(images[0]) != uuid_of(images[1])


def test_a_superblock_whose_checksums_follow_the_uuid_is_not_renamed() -> None:
    block = bytearray(1024)
    struct.pack_into("<I", block, 0x64, 0x400)  # metadata_csum, without metadata_csum_seed
    assert not _images._renamable(bytes(block))
    struct.pack_into("<I", block, 0x60, 0x2000)
    assert _images._renamable(bytes(block))


@needs_loop_devices
def test_one_janitor_serves_every_mount_and_unmounts_what_a_dead_host_left(
    tmp_path: Path,
) -> None:
    """The janitor stays between mounts: one started for the next mount ran beside its
    mount(2), which took ten times as long. Kept, it still follows every mount and
    unmount, and unmounts what the host left when it dies."""
    data = tmp_path / "data" / "acme.one"
    script = f"""
import os, sys
sys.path[:0] = {sys.path!r}
from pathlib import Path
import psutil
from plugbay.isolation import quota
mounts, data = quota.QuotaMounts(), Path({str(data)!r})
janitors = []
for _ in range(3):
    mounts.attach(data, 4 << 20, "acme.one")
    janitors.append(sorted(c.pid for c in psutil.Process().children()))
    mounts.detach(data)
mounts.attach(data, 4 << 20, "acme.one")
(data / "kept.txt").write_text("kept")
print(janitors, flush=True)
os._exit(0)  # dies with its image mounted: its janitor unmounts it
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    janitors = ast.literal_eval(done.stdout.strip())
    assert len(janitors[0]) == 1 and janitors == [janitors[0]] * 3  # the same one each time
    until_sync(lambda: quota.mount_source(data) is None, "the janitor's unmount", 30)
    image = quota.image_path(Path(os.path.realpath(data)))
    until_sync(lambda: quota.loop_devices_of(image) == [], "its loop device freed", 30)
    assert kept_at_the_next_mount(data, "kept.txt") == "kept"


@needs_loop_devices
def test_an_image_with_a_file_still_open_is_detached_and_freed_when_it_closes(
    tmp_path: Path,
) -> None:
    """Unmounted in the host's process (``umount2``): at once when nothing is open there;
    lazily while a file is, its loop device freed when that file closes."""
    data = tmp_path / "data" / "acme.one"
    image = quota.image_path(Path(os.path.realpath(tmp_path)) / "data" / "acme.one")
    mounts = quota.QuotaMounts()
    try:
        mounts.attach(data, 4 * MiB, "acme.one")
        with open(data / "open.txt", "w") as held:
            held.write("held")
            mounts.detach(data)
            assert quota.mount_source(data) is None  # gone from the mount table at once
            assert quota.loop_devices_of(image)  # still bound: a file is open there
        until_sync(lambda: quota.loop_devices_of(image) == [], "its loop device freed", 30)
        mounts.attach(data, 4 * MiB, "acme.one")
        assert (data / "open.txt").read_text() == "held"  # the write went to the image
        mounts.detach(data)
        assert quota.mount_source(data) is None and quota.loop_devices_of(image) == []
    finally:
        mounts.close()
    with pytest.raises(OSError, match="Invalid argument") as refused:
        _loop.unmount(str(tmp_path))  # not a mount point
    assert refused.value.errno == errno.EINVAL
