"""What a restore that crashed partway left is removed at the next restore and at a
host's start (``state._leftovers``): its ``state.db.restoring-<pid>-<tid>`` copy when that
pid no longer runs, and its empty ``state.db.replaced-*`` claim once it is over a minute
old and no running restore is beside it; a running restore's files are kept.

Real files in a real state directory; a dead pid is that of a real process that exited,
a live one that of a real process still running.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugbay.runtime.host import Host
from plugbay.state import StateStore
from plugbay.state.backups import restore, rolling_backup

#: an hour ago: past the minute a live claim could be that old
AN_HOUR = 3600.0


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that ran and exited (reaped: no process has it now)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a process that runs until the test ends."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        yield child.pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()


def _state_with_a_backup(state: Path) -> None:
    with StateStore.open(state) as store:
        store.set_enabled("acme.one", False, "maintenance")
        rolling_backup(store)


def _crashed_restore(state: Path, pid: int) -> list[Path]:
    """What a restore by ``pid`` killed partway left: its copy (with a journal), and an
    hour-old empty claim."""
    copy = state / f"state.db.restoring-{pid}-4242"
    copy.write_bytes(b"x" * 4096)
    journal = state / f"state.db.restoring-{pid}-4242-journal"
    journal.write_bytes(b"j")
    claim = state / "state.db.replaced-20261201T101010"
    claim.touch()
    os.utime(claim, (time.time() - AN_HOUR, time.time() - AN_HOUR))
    return [copy, journal, claim]


def test_a_restore_removes_what_a_dead_restore_left(tmp_path: Path, dead_pid: int) -> None:
    state = tmp_path / "state"
    _state_with_a_backup(state)
    left = _crashed_restore(state, dead_pid)
    kept_file = state / "state.db.replaced-20261201T090000"  # a replaced database: kept
    kept_file.write_bytes(b"SQLite format 3\x00")
    os.utime(kept_file, (time.time() - AN_HOUR, time.time() - AN_HOUR))
    done = restore(state)
    assert [p.name for p in left if p.exists()] == []
    assert kept_file.read_bytes() == b"SQLite format 3\x00"
    assert done.kept is not None and done.kept.stat().st_size > 0  # this restore's own
    with StateStore.open(state) as store:
        assert store.disabled() == {"acme.one": "maintenance"}


def test_a_running_restores_files_are_kept(tmp_path: Path, live_pid: int) -> None:
    state = tmp_path / "state"
    _state_with_a_backup(state)
    left = _crashed_restore(state, live_pid)
    fresh = state / "state.db.replaced-20261201T111111"  # a claim made a moment ago
    fresh.touch()
    restore(state)
    # the live pid's copy, and every claim while it may be that restore's, stay
    assert [p.name for p in left if not p.exists()] == []
    assert fresh.exists()


def test_a_fresh_claim_stays_when_no_restore_runs(tmp_path: Path, dead_pid: int) -> None:
    state = tmp_path / "state"
    _state_with_a_backup(state)
    copy, journal, old_claim = _crashed_restore(state, dead_pid)
    fresh = state / "state.db.replaced-20261201T111111"
    fresh.touch()
    restore(state)
    assert not copy.exists() and not journal.exists() and not old_claim.exists()
    assert fresh.exists(), "a claim under a minute old may be a restore's about to begin"


async def test_a_host_start_removes_what_a_dead_restore_left(tmp_path: Path, dead_pid: int) -> None:
    state = tmp_path / "state"
    _state_with_a_backup(state)
    left = _crashed_restore(state, dead_pid)
    (tmp_path / "plugins").mkdir()
    async with Host(tmp_path / "plugins", state_dir=state, entry_points=False) as host:
        assert host.state is not None and host.state.disabled() == {"acme.one": "maintenance"}
        assert [p.name for p in left if p.exists()] == []
