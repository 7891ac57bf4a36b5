"""The storage quota's figures: writing into a plugin's image, and mounting it.

Anchors, measured in the same run on the same disk: the same writes into a
plain directory beside it, and a fresh ``python -c pass`` (what any process
start costs). The quota (``isolation.quota``) is an ext4 image loop-mounted at
the data directory; the figures say what that costs a plugin's writes and a
plugin's start.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._report import Figure, print_figures

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "quota"
MiB = 1 << 20


def _big_writes(directory: Path) -> float:
    """Seconds to write 64 MiB in 1 MiB chunks and fsync it, then remove it."""
    chunk = os.urandom(MiB)
    path = directory / "big.bin"
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(64):
            f.write(chunk)
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def _small_files(directory: Path) -> float:
    """Seconds to create 2000 files of 4 KiB and sync them, then remove them."""
    block = os.urandom(4096)
    target = directory / "small"
    target.mkdir()
    start = time.perf_counter()
    for i in range(2000):
        (target / f"f{i}").write_bytes(block)
    _syncfs(directory)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def _syncfs(directory: Path) -> None:
    """Sync the filesystem ``directory`` is on (and only it: others may be busy)."""
    import ctypes

    fd = os.open(directory, os.O_RDONLY)
    try:
        ctypes.CDLL(None, use_errno=True).syncfs(fd)
    finally:
        os.close(fd)


def _python_start() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def run() -> int:
    from plugbay.isolation import quota

    status = quota.probe()
    if not status.enforced:
        print(f"\n== storage quota\n  skipped: the quota is sampled here ({status.detail})")
        return 0
    shutil.rmtree(WORK, ignore_errors=True)
    plain, data = WORK / "plain", WORK / "data" / "bench.quota"
    plain.mkdir(parents=True)
    data.mkdir(parents=True)
    mounts = quota.QuotaMounts()
    start = time.perf_counter()
    mounts.attach(data, 256 * MiB, "bench.quota")
    first_mount = time.perf_counter() - start
    try:
        image_big = statistics.median(_big_writes(data) for _ in range(3))
        plain_big = statistics.median(_big_writes(plain) for _ in range(3))
        image_small = statistics.median(_small_files(data) for _ in range(3))
        plain_small = statistics.median(_small_files(plain) for _ in range(3))
    finally:
        mounts.detach(data)
    remounts, pythons = [], []
    for _ in range(7):  # each remount beside a Python start: the two see the same machine
        start = time.perf_counter()
        mounts.attach(data, 256 * MiB, "bench.quota")
        remounts.append(time.perf_counter() - start)
        mounts.detach(data)
        pythons.append(_python_start())
    mounts.close()
    python = statistics.median(pythons)
    figures = [
        Figure(
            "64 MiB written and fsynced into a 256 MiB quota image",
            image_big,
            "the same into a plain directory on the same disk",
            plain_big,
            "within 2× of the plain directory",
            image_big <= 2 * plain_big,
        ),
        Figure(
            "2000 files of 4 KiB into the image, synced",
            image_small,
            "the same into a plain directory",
            plain_small,
            "(reported)",
            None,
            note="the plain directory's sync covers the whole host filesystem, which other "
            "work on the machine dirties too; the image's covers only itself",
        ),
        Figure(
            "mounting a plugin's existing image (a start) p50",
            statistics.median(remounts),
            "subprocess `python -c pass` p50",
            python,
            "≤ 1× a Python start",
            statistics.median(remounts) <= python,
        ),
        Figure(
            "making and mounting a new 256 MiB image (a first start)",
            first_mount,
            "subprocess `python -c pass` p50",
            python,
            "(reported)",
            None,
        ),
    ]
    print_figures("storage quota (loop-mounted ext4 image)", figures)
    shutil.rmtree(WORK, ignore_errors=True)
    return sum(1 for f in figures if f.passed is False)
