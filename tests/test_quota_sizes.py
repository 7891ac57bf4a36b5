"""The storage quota's image follows its size (a lowered quota shrinks it, the data kept),
and its log lines give sizes in the words every other message uses."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import pytest

from plugbay.isolation import quota

MiB = 1 << 20


@pytest.mark.skipif(shutil.which("e2fsck") is None, reason="needs e2fsprogs")
def test_a_quota_that_cannot_be_resized_is_said_in_mib_as_limits_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = tmp_path / "data.img"
    image.write_bytes(b"not a filesystem" * (3 * MiB // 16 + 6400))  # 3.1 MiB, unreadable
    caplog.set_level(logging.WARNING, logger="plugbay")
    quota._resize(image, 5 * MiB + 300 * 1024, "acme.quota")
    said = [r.getMessage() for r in caplog.records if "acme.quota" in r.getMessage()]
    assert len(said) == 1, caplog.text
    assert "its storage quota changed to 5.3 MiB" in said[0]
    assert "keeps 3.1 MiB" in said[0]
    assert image.stat().st_size == 3 * MiB + 100 * 1024  # the room it grew is given back


def test_a_lowered_quota_shrinks_the_image_to_it_and_keeps_the_data(tmp_path: Path) -> None:
    # a 256 MiB image (the default quota) holds 2 MiB; the manifest then asks for 8 MiB:
    # resize2fs refuses (the metadata laid out for 256 MiB needs 8.3 MiB), and the
    # plugin kept a 259 MB data directory
    assert quota.probe().enforced, quota.probe().detail
    mounts, data = quota.QuotaMounts(), tmp_path / "data" / "acme.hog"
    try:
        mounts.attach(data, 256 * MiB, "acme.hog")
        (data / "kept.bin").write_bytes(b"k" * 2 * MiB)
        mounts.detach(data)
        mounts.attach(data, 8 * MiB, "acme.hog")
        st = os.statvfs(data)
        assert st.f_blocks * st.f_frsize <= 8 * MiB
        assert (data / "kept.bin").read_bytes() == b"k" * 2 * MiB
        with pytest.raises(OSError, match="No space left") as full, open(data / "more", "wb") as f:
            f.write(b"m" * 8 * MiB)
        assert full.value.errno == errno.ENOSPC
    finally:
        mounts.close()
    assert quota.image_path(data).stat().st_size == 8 * MiB
    assert sorted(p.name for p in quota.image_path(data).parent.iterdir()) == ["acme.hog.ext4"]


def test_a_lowered_quota_the_data_does_not_fit_keeps_the_image_and_the_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert quota.probe().enforced, quota.probe().detail
    caplog.set_level(logging.WARNING, logger="plugbay")
    mounts, data = quota.QuotaMounts(), tmp_path / "data" / "acme.hog"
    try:
        mounts.attach(data, 256 * MiB, "acme.hog")
        (data / "kept.bin").write_bytes(b"k" * 12 * MiB)
        mounts.detach(data)
        mounts.attach(data, 8 * MiB, "acme.hog")
        assert (data / "kept.bin").read_bytes() == b"k" * 12 * MiB
    finally:
        mounts.close()
    assert "its storage quota changed to 8 MiB, but its image could not be resized" in caplog.text
    assert quota.image_path(data).stat().st_size == 256 * MiB
    assert sorted(p.name for p in quota.image_path(data).parent.iterdir()) == ["acme.hog.ext4"]
