"""``plugbay state backup --to``: when syncing the directory fails after the backup is
under its name, the error says the copy is there (it said "nothing was written there",
and an operator deleted nothing, or trusted nothing, on a false word).

An I/O error from ``fsync`` of a directory cannot be staged on a test machine's disks,
so ``sync_directory`` is made to raise ``OSError(EIO)`` here; the link, the file and the
check of it are real."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from plugbay.api.errors import StateError
from plugbay.state import _placing
from plugbay.state.backups import backup_to, check_database
from tests.test_state_backups import used_state  # noqa: F401 (a fixture)


def _eio(directory: Path) -> None:
    raise OSError(errno.EIO, os.strerror(errno.EIO), str(directory))


def test_a_failed_directory_sync_says_the_backup_is_there(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    dest = kept / "before-upgrade.db"
    monkeypatch.setattr(_placing, "sync_directory", _eio)
    with pytest.raises(StateError) as raised:
        backup_to(used_state, dest)
    error = raised.value
    assert error.message == (
        "the state backup is written, but syncing its directory failed: " + os.strerror(errno.EIO)
    )
    assert error.where == str(dest)
    assert error.hint is not None
    assert "nothing was written" not in error.hint
    assert error.hint.startswith("the copy is there, whole, but its name may not outlive")
    assert "--to" in error.hint
    # what the words say: the copy is there, whole, and nothing else beside it
    assert [p.name for p in kept.iterdir()] == ["before-upgrade.db"]
    assert check_database(dest, backup=True).ok


def test_a_link_that_fails_still_says_nothing_was_written(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The words for a failure before the name exists stay as they were, and true."""
    kept = tmp_path / "kept"
    kept.mkdir()

    def link_refused(src: object, dst: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))

    monkeypatch.setattr(_placing.os, "link", link_refused)
    with pytest.raises(StateError) as raised:
        backup_to(used_state, kept / "before-upgrade.db")
    assert raised.value.message == f"cannot write the state backup: {os.strerror(errno.EIO)}"
    assert (raised.value.hint or "").startswith("nothing was written there")
    assert list(kept.iterdir()) == []
