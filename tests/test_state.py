"""The SQLite state: durable across restarts and kill -9, clear about bad files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from plugbay.errors import StateError
from plugbay.state import SCHEMA_VERSION, StateStore


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as s:
        s.set_enabled("a", False, "too noisy")
        s.set_active_version("a", "1.2.0")
        s.set_config("a", {"level": "debug", "n": 3, "ü": ["x"]})
        s.record_installed("a", "1.2.0", "/plugins/a")
        s.record_installed("a", "1.3.0", "/store/a-1.3.0.whl")
        s.grant("a", "network:127.0.0.1:80")
        first = s.add_event("a", "load", version="1.2.0")
        s.add_event(
            "a", "fail", version="1.3.0", result="failed", reason="boom", details={"k": "v"}
        )
    with StateStore.open(tmp_path) as s:
        assert s.disabled() == {"a": "too noisy"}
        assert not s.is_enabled("a") and s.is_enabled("unknown")
        assert s.active_versions() == {"a": "1.2.0"}
        assert s.get_config("a") == {"level": "debug", "n": 3, "ü": ["x"]}
        assert s.installed("a") == [
            ("a", "1.2.0", "/plugins/a"),
            ("a", "1.3.0", "/store/a-1.3.0.whl"),
        ]
        assert s.grants("a") == ["network:127.0.0.1:80"]
        events = s.history("a")
        assert [(e.action, e.result, e.reason) for e in events] == [
            ("fail", "failed", "boom"),
            ("load", "ok", None),
        ]
        assert events[-1].id == first and events[0].details == {"k": "v"}
        row = s.plugin("a")
        assert (
            row is not None
            and row.enabled is False
            and row.config == {"level": "debug", "n": 3, "ü": ["x"]}
        )


def test_enabling_clears_the_reason_and_revoke_reports(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as s:
        s.set_enabled("a", False, "x")
        s.set_enabled("a", True)
        assert s.disabled() == {}
        assert s.revoke("a", "env:HOME") is False
        s.grant("a", "env:HOME")
        assert s.revoke("a", "env:HOME") is True


def test_wal_mode_and_private_directory(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with StateStore.open(state_dir) as s:
        assert s._read("PRAGMA journal_mode") == [("wal",)]
    assert (state_dir.stat().st_mode & 0o777) == 0o700


def test_kill_9_loses_nothing_that_was_committed(tmp_path: Path) -> None:
    writer = (
        "import sys\n"
        "from pathlib import Path\n"
        "from plugbay.state import StateStore\n"
        "s = StateStore.open(Path(sys.argv[1]))\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    n = s.add_event('p', 'load', version=f'1.0.{i}', details={'pad': 'x' * 200})\n"
        "    print(n, flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", writer, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = [int(proc.stdout.readline()) for _ in range(300)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with StateStore.open(tmp_path) as s:
        stored = {e.id for e in s.history("p", limit=100_000)}
        assert set(acknowledged) <= stored
        assert s._read("PRAGMA integrity_check") == [("ok",)]


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError) as err:
        StateStore.open(tmp_path)
    text = str(err.value)
    assert text.startswith("the state file is not a usable SQLite database")
    assert str(tmp_path / "state.db") in text
    assert "move the file away" in text


def test_a_database_from_a_newer_plugbay(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match="newer than this plugbay understands") as err:
        StateStore.open(tmp_path)
    assert "upgrade plugbay" in str(err.value)


def test_unwritable_state_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot create the state directory"):
        StateStore.open(blocker / "state")


def test_writes_from_two_threads(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as s:

        def write(tag: str) -> None:
            for i in range(200):
                s.add_event(tag, "load", version=f"1.0.{i}")
                s.set_config(tag, {"i": i})

        threads = [threading.Thread(target=write, args=(t,)) for t in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(s.history("a", limit=1000)) == 200
        assert len(s.history("b", limit=1000)) == 200
        assert s.get_config("a") == {"i": 199}
