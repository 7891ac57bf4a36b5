"""The storage quota's log lines give sizes in the words every other message uses."""

from __future__ import annotations

import logging
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
