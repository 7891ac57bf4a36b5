"""Backups and restores that could still lose or misread a file: a new name not synced
into its directory, ``backup --to`` on a file system without hard links, two library
restores at one moment keeping their replaced files under one name, and a ``--from``
source a host still has open read in place (SQLite writes a reader's marks into its
``-shm``)."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from plugbay.api.errors import StateError
from plugbay.state import BACKUP_DIR, StateStore, _restore_source
from plugbay.state import backups as backups_module
from plugbay.state.backups import Restored, backup_to, manual_backup, restore
from tests.test_state_backups import used_state  # noqa: F401 (a fixture)


def _disabled(database: Path) -> dict[str, str | None]:
    """The plugins ``database`` (a file nothing writes) has disabled, read at rest."""
    uri = f"{database.resolve().as_uri()}?mode=ro&immutable=1"
    db = sqlite3.connect(uri, uri=True)
    try:
        rows = db.execute("SELECT plugin_id, disabled_reason FROM plugins WHERE enabled=0")
        return dict(rows.fetchall())
    finally:
        db.close()


def _synced_directories(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file a directory held when it was fsync'd from now on (the real fsync still
    runs). A power cut cannot be staged in a test: that the directory is synced once the
    new name is in it is what can be seen of the name outliving one."""
    synced: list[Path] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            directory = Path(os.readlink(f"/proc/self/fd/{fd}"))
            synced.extend(directory.iterdir())
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_a_backup_and_a_restore_sync_the_directory_of_the_name_they_make(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The file's pages were synced, its directory was not: after a power cut the backup
    (or the restored state.db) could be missing under its name."""
    synced = _synced_directories(monkeypatch)
    made = manual_backup(used_state)
    assert made.resolve() in synced
    elsewhere = tmp_path / "kept"
    elsewhere.mkdir()
    backup_to(used_state, elsewhere / "nightly.db")  # taken as .nightly.db…taking
    assert (elsewhere / "nightly.db").resolve() in synced
    (used_state / "state.db").unlink()  # the restored one is the only state.db synced
    restore(used_state, made)
    assert (used_state / "state.db").resolve() in synced


def _without_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.link as on FAT (EPERM). A FAT file system cannot be mounted here (no vfat in
    this kernel), so the refusal is staged where plugbay meets it."""

    def link(src: object, dst: object, **_: object) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), str(src), None, str(dst))

    monkeypatch.setattr(os, "link", link)


def test_a_backup_to_a_disk_without_hard_links_is_written_and_never_replaces_a_file(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It failed, "cannot write the state backup: Operation not permitted", unless --force
    (which gives up the guard against replacing a file)."""
    _without_hard_links(monkeypatch)
    dest = tmp_path / "nightly.db"
    assert backup_to(used_state, dest) == dest
    assert _disabled(dest) == {"acme.one": "maintenance"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".plugbay", "nightly.db", "plugins"]
    dest.write_text("the operator's notes\n")
    with pytest.raises(StateError, match="there is a file there already"):
        backup_to(used_state, dest)
    assert dest.read_text() == "the operator's notes\n"

    other = tmp_path / "other.db"  # made there while the copy is taken
    taking = StateStore.back_up

    def another_backup_meanwhile(store: StateStore, to: Path) -> Path:
        made = taking(store, to)
        other.write_text("the other one\n")
        return made

    monkeypatch.setattr(StateStore, "back_up", another_backup_meanwhile)
    with pytest.raises(StateError, match="there is a file there already"):
        backup_to(used_state, other)
    assert other.read_text() == "the other one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".plugbay", "nightly.db", "other.db", "plugins"
    ]  # fmt: skip


def test_two_library_restores_at_one_moment_keep_both_replaced_files(
    used_state: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both chose state.db.replaced-<second> before either moved the database there: the
    second replaced file went over the first (and both wrote one state.db.restoring)."""
    second = backups_module.time.gmtime()
    monkeypatch.setattr(backups_module.time, "gmtime", lambda *_: second)
    with StateStore.open(used_state) as store:
        store.set_enabled("acme.two", False, "before both")
    both_named = threading.Barrier(2, timeout=30)
    first_done = threading.Event()
    reading = backups_module._revoked_again

    def at_one_moment(restored: Path, source: Path, replaced: Path, kept: Path) -> Restored:
        # both have chosen where to keep the replaced file; then one after the other
        if both_named.wait() == 1:
            assert first_done.wait(30)
        return reading(restored, source, replaced, kept)

    monkeypatch.setattr(backups_module, "_revoked_again", at_one_moment)
    done: list[Restored] = []

    def run() -> None:
        try:
            done.append(restore(used_state))
        finally:
            first_done.set()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(done) == 2
    kept = sorted(str(d.kept) for d in done)
    assert len(set(kept)) == 2
    # the database as it was before both, and the first restore's, each kept
    reasons = [_disabled(Path(name)).get("acme.two") for name in kept]
    assert sorted(map(str, reasons)) == ["None", "before both"]
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "maintenance"}  # as the backup had it
    assert not list(used_state.glob("state.db.restoring*"))


def test_a_restore_from_a_database_a_host_has_open_leaves_its_three_files_as_they_were(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """With a -shm beside the -wal the source was read in place: SQLite wrote the reader's
    marks (and any index it rebuilt) into the operator's -shm."""
    other = tmp_path / "other"
    with StateStore.open(other) as store:
        store.set_enabled("acme.one", False, "only in the wal")
    holder = sqlite3.connect(other / "state.db")  # a host still open on it, not writing
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("SELECT count(*) FROM plugins").fetchone()  # its -shm is made
        with holder:
            holder.execute(
                "UPDATE plugins SET disabled_reason='held open, only in the wal' "
                "WHERE plugin_id='acme.one'"
            )
        files = [other / f"state.db{s}" for s in ("", "-wal", "-shm")]
        assert all(f.exists() for f in files) and files[1].stat().st_size > 0
        before = [f.read_bytes() for f in files]
        done = restore(used_state, other / "state.db")
        assert done.unread is None
        assert [f.read_bytes() for f in files] == before
    finally:
        holder.close()
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "held open, only in the wal"}
    assert not list(used_state.glob(".restoring-*"))
    assert BACKUP_DIR in {p.name for p in used_state.iterdir()}


def test_a_restore_from_a_database_a_host_writes_meanwhile_is_refused_and_changes_nothing(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its file and its -wal are copied one after the other: a host writing between the
    two would make a copy of two moments; it is refused rather than restored."""
    other = tmp_path / "other"
    with StateStore.open(other) as store:
        store.set_enabled("acme.one", False, "first")
    holder = sqlite3.connect(other / "state.db", check_same_thread=False)
    copying = _restore_source.shutil.copyfile

    def a_host_writes_meanwhile(src: Path, dst: Path) -> object:
        copied = copying(src, dst)
        with holder:
            holder.execute("UPDATE plugins SET disabled_reason='second' WHERE plugin_id='acme.one'")
        return copied

    try:
        with holder:
            holder.execute("UPDATE plugins SET disabled_reason='first, again'")
        monkeypatch.setattr(_restore_source.shutil, "copyfile", a_host_writes_meanwhile)
        with pytest.raises(StateError) as refused:
            restore(used_state, other / "state.db")
    finally:
        holder.close()
    assert refused.value.message == "the backup changed while it was read: a host is writing it"
    assert refused.value.where == str(other / "state.db")
    assert "stop the host that uses it" in str(refused.value.hint)
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "maintenance"}
    assert not list(used_state.glob(".restoring-*"))
    assert not list(used_state.glob("state.db.re*"))
