"""The read-only commands on a full disk: SQLite could not make or grow the database's
``-shm`` even for a read-only open, so ``list``, ``info``, ``history``, ``state check``
(which called a sound database damaged, and offered a restore over it) and the open of
``state backup`` failed. They read the state now, what a host killed before its
checkpoint left in the ``-wal`` too; what cannot work on a full disk says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._cli import plugbay
from tests.conftest import PluginFactory
from tests.test_cli_offline import check_offline, snapshot, used_by_a_host
from tests.test_full_disk import _mount, fill

#: what a host killed with SIGKILL leaves: committed writes in the -wal, no checkpoint
KILLED_WRITER = """
import os, sys
from pathlib import Path
from plugbay.state import StateStore
store = StateStore.open(Path(sys.argv[1]))
store.set_enabled("acme.calc", False, "only in the wal")
os._exit(0)
"""


def mounted(point: Path, options: str) -> Iterator[Path]:
    reason = _mount(point, options)
    if reason is not None:
        pytest.skip(reason)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    yield from mounted(tmp_path / "small", "16m")


def no_sidecars(state: Path) -> None:
    """As after a clean stop: no -wal, no -shm, so a reader must make its -shm."""
    for suffix in ("-wal", "-shm"):
        (state / f"state.db{suffix}").unlink(missing_ok=True)


async def test_read_only_commands_read_the_state_on_a_full_disk(
    plugins: PluginFactory, tmp_path: Path, small_fs: Path
) -> None:
    state = small_fs / "state"
    await used_by_a_host(plugins, tmp_path, state)
    no_sidecars(state)
    before = snapshot(state)
    filler = fill(small_fs)
    check_offline(tmp_path, state)
    checked = plugbay("state", "check", "--state", str(state), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "the state database is sound" in checked.stdout
    backup = plugbay("state", "backup", "--state", str(state), cwd=tmp_path)
    assert backup.returncode == 1
    assert "Traceback" not in backup.stdout + backup.stderr
    assert "cannot back up the state database" in backup.stderr
    assert f"the disk holding {state / 'backups'} is full" in " ".join(backup.stderr.split())
    assert not list((state / "backups").glob("*-manual.db*"))  # no part of a copy left
    assert snapshot(state) == before
    filler.unlink()
    again = plugbay("state", "backup", "--state", str(state), cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_what_a_killed_host_left_in_the_wal_is_read_on_a_full_disk(
    plugins: PluginFactory, tmp_path: Path, small_fs: Path
) -> None:
    """Reading it ``immutable`` (as on a read-only disk) would skip the -wal: the plugin
    disabled there would be listed as not running."""
    plugins("acme.calc")
    state = small_fs / "state"
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(state)], check=True)
    assert (state / "state.db-wal").stat().st_size > 0
    (state / "state.db-shm").unlink()
    filler = fill(small_fs)
    args = ("--state", str(state), "-p", str(plugins.root))
    listed = plugbay("list", "--json", *args, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["id"], row["state"], row["reason"]) == ("acme.calc", "disabled", "only in the wal")
    checked = plugbay("state", "check", "--state", str(state), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    filler.unlink()


def test_a_backup_on_a_full_disk_says_how_much_room_it_needs_and_where(
    plugins: PluginFactory, tmp_path: Path, small_fs: Path
) -> None:
    """It said the disk was full, not what the copy needs (the database and its -wal, which
    a killed host left) nor how much was free there: how much to free, and where."""
    plugins("acme.calc")
    state = small_fs / "state"
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(state)], check=True)
    database, wal = (state / "state.db").stat().st_size, (state / "state.db-wal").stat().st_size
    assert wal > 0
    filler = fill(small_fs)
    backup = plugbay("state", "backup", "--state", str(state), cwd=tmp_path)
    said = " ".join(backup.stderr.split())
    st = os.statvfs(small_fs)
    free = st.f_bavail * st.f_frsize
    assert backup.returncode == 1, said
    assert f"the disk holding {state / 'backups'} is full" in said, said
    assert f"the copy needs up to {database + wal:,} bytes" in said
    assert f"(state.db {database:,} and its -wal {wal:,})" in said
    assert f"and {free:,} are free there" in said
    assert f"free at least {database + wal - free:,} bytes on that disk" in said
    assert "then run 'plugbay state backup' again" in said
    assert "Traceback" not in said
    filler.unlink()
    again = plugbay("state", "backup", "--state", str(state), cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def _touch_forever(directory: Path) -> None:
    """Make empty files until the file system has no inode left for one more."""
    for i in range(100_000):
        (directory / f"inode-{i}").touch()


@pytest.fixture
def no_inodes_fs(tmp_path: Path) -> Iterator[Path]:
    yield from mounted(tmp_path / "tiny", "16m,nr_inodes=64")


def test_a_disk_without_room_for_even_an_empty_file_is_said_not_damage(
    plugins: PluginFactory, tmp_path: Path, no_inodes_fs: Path
) -> None:
    """No -shm can be made at all: the commands say the disk is full, and ``state check``
    no longer calls the database damaged nor offers to restore a backup over it."""
    state = no_inodes_fs / "state"
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(state)], check=True)
    no_sidecars(state)
    filler = fill(no_inodes_fs)
    with pytest.raises(OSError, match="No space left on device"):
        _touch_forever(no_inodes_fs)
    listed = plugbay("list", "--state", str(state), "-p", str(tmp_path), cwd=tmp_path)
    assert listed.returncode == 1
    assert "the disk holding the state directory is full; free some space" in listed.stderr
    checked = plugbay("state", "check", "--state", str(state), cwd=tmp_path)
    assert checked.returncode == 1
    assert "the state database could not be checked" in checked.stderr, checked.stderr
    assert "the disk holding it is full" in checked.stderr
    assert "damaged" not in checked.stderr.replace("nothing says it is damaged", "")
    assert "Traceback" not in listed.stderr + checked.stderr
    filler.unlink()
    assert not os.path.exists(state / "state.db-shm")
