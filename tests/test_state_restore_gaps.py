"""``plugbay state restore --from`` brings back what its check saw (rows only in a
``-wal`` beside the file too), two restores in one second keep both replaced files, and
``plugbay state backup --to DIR/`` takes the ``/`` to mean a directory."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from plugbay.state import StateStore
from plugbay.state import backups as backups_module
from plugbay.state.backups import restore
from tests._cli import plugbay
from tests.test_state_backups import used_state  # noqa: F401 (a fixture)


def _said(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def _copy_with_wal_pages(tmp_path: Path) -> Path:
    """A copy an operator made of another host's ``state.db`` and its ``-wal`` while the
    host ran without checkpointing: what it wrote last is only in the ``-wal``."""
    other, kept = tmp_path / "other", tmp_path / "kept"
    kept.mkdir()
    with StateStore.open(other) as store:
        store._connection().execute("PRAGMA wal_autocheckpoint=0")
        store.set_enabled("acme.one", False, "only in the wal")
        store.add_event("acme.one", "disable", reason="only in the wal")
        for name in ("state.db", "state.db-wal"):
            shutil.copyfile(other / name, kept / name)
    assert (kept / "state.db-wal").stat().st_size > 0
    with sqlite3.connect(f"{(kept / 'state.db').as_uri()}?mode=ro&immutable=1", uri=True) as db:
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name='plugins'").fetchone()
        assert tables == (0,)  # the main file alone has not even the schema yet
    return kept / "state.db"


def test_a_restore_from_a_file_with_wal_pages_brings_them_back_and_leaves_it_as_it_was(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The check read the -wal, the restore copied the main file only: the state came
    back without what the check showed (here, without even its tables)."""
    source = _copy_with_wal_pages(tmp_path)
    before = {p.name: p.read_bytes() for p in source.parent.iterdir()}
    with StateStore.open(used_state) as store:
        store.set_enabled("acme.one", True)
    done = plugbay("state", "restore", "--from", str(source), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["revocations_unread"] is None
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "only in the wal"}
        assert "disable" in {e.action for e in store.history("acme.one", limit=10)}
    # the operator's file and its -wal as they were, and no -shm made beside them
    assert {p.name: p.read_bytes() for p in source.parent.iterdir()} == before
    assert not list(used_state.glob(".restoring-*"))  # the private copy is gone


def test_two_restores_in_one_second_keep_both_replaced_files(
    used_state: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both were kept as state.db.replaced-<second>: the second restore put its replaced
    file over the first's, and the database as it was before both was gone."""
    second = time.gmtime()
    monkeypatch.setattr(backups_module.time, "gmtime", lambda *_: second)
    with StateStore.open(used_state) as store:
        store.set_enabled("acme.two", False, "before both")
    first = restore(used_state)
    with StateStore.open(used_state) as store:
        store.set_enabled("acme.two", False, "between them")
    again = restore(used_state)
    assert first.kept is not None and again.kept is not None
    stamp = time.strftime("%Y%m%dT%H%M%S", second)
    assert first.kept.name == f"state.db.replaced-{stamp}"
    assert again.kept.name == f"state.db.replaced-{stamp}-2"
    for kept, reason in ((first.kept, "before both"), (again.kept, "between them")):
        copy = StateStore(kept, read_only=True)
        try:
            assert copy.disabled()["acme.two"] == reason
        finally:
            copy.close()


def test_a_backup_to_a_path_ending_in_a_slash_is_a_directory(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`--to newdir/` with no newdir wrote a file named newdir."""
    done = plugbay("state", "backup", "--to", "newdir/", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    said = _said(done.stderr)
    assert "'--to'" in said
    assert "'newdir/' names a directory (it ends in '/'), which does not exist" in said
    assert "create 'newdir' first, or leave the '/' out to name a file" in said
    assert not (tmp_path / "newdir").exists()
    (tmp_path / "notes.db").write_text("the operator's notes\n")
    forced = plugbay("state", "backup", "--to", "notes.db/", "--force", "--json", cwd=tmp_path)
    assert forced.returncode == 2
    message = json.loads(forced.stdout)["error"]["message"]
    assert "'notes.db/' names a directory (it ends in '/'), but 'notes.db' is not one" in message
    assert (tmp_path / "notes.db").read_text() == "the operator's notes\n"
    (tmp_path / "newdir").mkdir()
    into = plugbay("state", "backup", "--to", "newdir/", "--json", cwd=tmp_path)
    assert into.returncode == 0, into.stderr
    made = Path(json.loads(into.stdout)["backup"])
    assert made.parent.name == "newdir" and made.name.endswith("-manual.db")
    assert [p.name for p in (tmp_path / "newdir").iterdir()] == [made.name]
