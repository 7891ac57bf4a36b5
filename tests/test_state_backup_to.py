"""``plugbay state backup --to PATH`` writes the backup where the operator keeps backups,
with the default's guarantees, and ``plugbay state restore --from`` takes it back; a
``--from`` that is not there is a usage error naming the option."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugbay.api.errors import StateError
from plugbay.state import StateStore, list_backups
from plugbay.state.backups import backup_to, check_database
from tests._cli import plugbay
from tests._running import plugbay_run
from tests.test_full_disk import fill
from tests.test_state_backups import used_state  # noqa: F401 (a fixture)
from tests.test_state_full_disk import mounted


def _said(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_a_restore_from_a_file_that_is_not_there_names_the_option(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """It was exit 1, "the backup does not pass its check: cannot read it", unlike every
    other path option."""
    done = plugbay("state", "restore", "--from", "nothere.db", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    said = _said(done.stderr)
    assert "'--from'" in said
    assert "'nothere.db' does not exist; it takes a backup file: check the path" in said
    as_json = plugbay("state", "restore", "--from", "nothere.db", "--json", cwd=tmp_path)
    assert as_json.returncode == 2
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "usage_error" and "'--from'" in error["message"]
    assert "'nothere.db' does not exist; it takes a backup file" in error["message"]
    assert not list(used_state.glob("state.db.replaced-*"))
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "maintenance"}


def test_a_backup_to_a_directory_or_a_file_is_restored_and_leaves_nothing_beside_it(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    into = json.loads(plugbay("state", "backup", "--to", "kept", "--json", cwd=tmp_path).stdout)
    made = tmp_path / into["backup"]
    assert made.parent == kept and made.name.endswith("-manual.db")
    assert into["size"] == made.stat().st_size and check_database(made, backup=True).ok
    named = plugbay("state", "backup", "--to", "kept/before-upgrade.db", cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert "backed up the state database to kept/before-upgrade.db (" in named.stdout
    assert "'plugbay state restore --from kept/before-upgrade.db' puts it back" in named.stdout
    assert len(list_backups(used_state)) == 1  # the fixture's: none of these went there
    with StateStore.open(used_state) as store:
        store.set_enabled("acme.one", True)  # after the backups
    back = plugbay("state", "restore", "--from", "kept/before-upgrade.db", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "maintenance"}  # as the backup had it
    # the restore's check left no -wal / -shm beside the operator's file
    assert sorted(p.name for p in kept.iterdir()) == sorted([made.name, "before-upgrade.db"])


def test_a_backup_to_a_file_there_is_refused_unless_forced(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.db").write_text("the operator's notes\n")
    done = plugbay("state", "backup", "--to", "notes.db", cwd=tmp_path)
    assert done.returncode == 1
    said = _said(done.stderr)
    assert "there is a file there already; the backup would replace it (at notes.db)" in said
    assert "add --force to replace it" in said
    assert (tmp_path / "notes.db").read_text() == "the operator's notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".plugbay", "notes.db", "plugins"]
    forced = plugbay("state", "backup", "--to", "notes.db", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert check_database(tmp_path / "notes.db", backup=True).ok
    alone = plugbay("state", "backup", "--force", "--json", cwd=tmp_path)
    assert alone.returncode == 2
    message = json.loads(alone.stdout)["error"]["message"]
    assert "'--force'" in message and "there is nothing to replace without --to" in message


def test_a_file_made_there_while_the_copy_is_taken_is_not_replaced(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check before the copy does not cover a file another backup writes meanwhile."""
    dest = tmp_path / "nightly.db"
    taking = StateStore.back_up

    def another_backup_meanwhile(store: StateStore, to: Path) -> Path:
        made = taking(store, to)
        dest.write_text("the other one\n")
        return made

    monkeypatch.setattr(StateStore, "back_up", another_backup_meanwhile)
    with pytest.raises(StateError, match="there is a file there already"):
        backup_to(used_state, dest)
    assert dest.read_text() == "the other one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".plugbay", "nightly.db", "plugins"]


@pytest.mark.parametrize("json_output", [False, True])
def test_a_backup_to_a_directory_that_does_not_exist_is_a_usage_error(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
    json_output: bool,
) -> None:
    done = plugbay(
        "state", "backup", "--to", "missing/x.db", *(["--json"] if json_output else []),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    said = json.loads(done.stdout)["error"]["message"] if json_output else _said(done.stderr)
    assert "'--to'" in said
    assert "'missing/x.db' is in 'missing', which does not exist" in said
    assert "create 'missing' first" in said
    assert not (tmp_path / "missing").exists()


def test_a_backup_to_beside_a_running_host_is_whole_and_the_host_goes_on(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    with plugbay_run(tmp_path) as host:
        taken = plugbay("state", "backup", "--to", "live.db", cwd=tmp_path)
        assert taken.returncode == 0, taken.stderr
        copy = StateStore(tmp_path / "live.db", read_only=True)
        try:  # what the host had written by then is in it: its start of acme.two
            assert "load" in {e.action for e in copy.history("acme.two", limit=100)}
        finally:
            copy.close()
        assert plugbay("disable", "acme.two", cwd=tmp_path).returncode == 0  # it still writes
        assert host.proc.poll() is None
    assert check_database(tmp_path / "live.db", backup=True).ok


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    yield from mounted(tmp_path / "small", "16m")


def test_a_backup_to_a_full_disk_names_the_place_and_the_bytes(
    used_state: Path,  # noqa: F811
    tmp_path: Path,
    small_fs: Path,
) -> None:
    database = (used_state / "state.db").stat().st_size
    filler = fill(small_fs)
    st = os.statvfs(small_fs)
    free = st.f_bavail * st.f_frsize
    done = plugbay("state", "backup", "--to", str(small_fs / "x.db"), cwd=tmp_path)
    said = _said(done.stderr)
    assert done.returncode == 1, said
    assert f"the disk holding {small_fs} is full: the copy needs up to {database:,} bytes" in said
    assert f"and {free:,} are free there" in said
    assert f"free at least {database - free:,} bytes on that disk, or name a place" in said
    assert "backups are always written there" not in said
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]  # no part of a copy
    filler.unlink()
    again = plugbay("state", "backup", "--to", str(small_fs / "x.db"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in small_fs.iterdir()) == ["x.db"]
