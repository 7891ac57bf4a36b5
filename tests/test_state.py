"""The SQLite state: durable across restarts and kill -9, clear about bad files."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import plugbay
from plugbay.api.errors import StateError
from plugbay.state import SCHEMA_VERSION, StateStore

SRC = Path(plugbay.__file__).resolve().parent.parent


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as s:
        s.set_enabled("a", False, "too noisy")
        s.set_enabled("b", True)
        s.set_active_version("a", "1.2.0")
        s.set_active_version("b", "0.1.0")
        s.set_config("a", {"level": "debug", "n": 3, "ü": ["x"], "f": 1.5, "none": None})
        s.record_installed("a", "1.2.0", "/plugins/a")
        s.record_installed("a", "1.3.0", "/store/a-1.3.0.whl")
        s.record_installed("b", "0.1.0", "entry-point:b")
        s.grant("a", "network:127.0.0.1:80")
        s.grant("a", "env:HOME")
        first = s.add_event("a", "load", version="1.2.0")
        s.add_event("b", "load", version="0.1.0")
        last = s.add_event(
            "a", "fail", version="1.3.0", result="failed", reason="boom", details={"k": "v"}
        )
    with StateStore.open(tmp_path) as s:
        assert s.disabled() == {"a": "too noisy"}
        assert not s.is_enabled("a") and s.is_enabled("b") and s.is_enabled("unknown")
        assert s.active_versions() == {"a": "1.2.0", "b": "0.1.0"}
        assert s.get_config("a") == {"level": "debug", "n": 3, "ü": ["x"], "f": 1.5, "none": None}
        assert s.get_config("b") is None and s.get_config("unknown") is None
        assert s.installed("a") == [
            ("a", "1.2.0", "/plugins/a"),
            ("a", "1.3.0", "/store/a-1.3.0.whl"),
        ]
        assert s.installed() == [*s.installed("a"), ("b", "0.1.0", "entry-point:b")]
        assert s.grants("a") == ["env:HOME", "network:127.0.0.1:80"]
        assert s.grants("b") == []
        events = s.history("a")
        assert [(e.action, e.version, e.result, e.reason) for e in events] == [
            ("fail", "1.3.0", "failed", "boom"),
            ("load", "1.2.0", "ok", None),
        ]
        assert (events[0].id, events[-1].id) == (last, first)
        assert events[0].details == {"k": "v"} and events[1].details == {}
        assert [e.plugin_id for e in s.history()] == ["a", "b", "a"]
        assert [e.plugin_id for e in s.history(limit=1)] == ["a"]
        row = s.plugin("a")
        assert row is not None
        assert (row.enabled, row.disabled_reason, row.active_version) == (
            False,
            "too noisy",
            "1.2.0",
        )
        assert row.config is not None and row.config["ü"] == ["x"]
        assert [r.plugin_id for r in s.plugins()] == ["a", "b"]
        assert s.plugin("unknown") is None
        # ids keep growing after a restart: history order is insertion order
        assert s.add_event("b", "unload") > last


def test_enable_revoke_and_install_edits(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as s:
        s.set_enabled("a", False, "x")
        s.set_enabled("a", True, "ignored: an enabled plugin has no disable reason")
        assert s.disabled() == {} and s.is_enabled("a")
        assert s.revoke("a", "env:HOME") is False
        s.grant("a", "env:HOME")
        s.grant("a", "env:HOME")
        assert s.grants("a") == ["env:HOME"]
        assert s.revoke("a", "env:HOME") is True
        assert s.grants("a") == []
        s.record_installed("a", "1.0.0", "/old")
        s.record_installed("a", "2.0.0", "/two")
        s.record_installed("a", "1.0.0", "/new")  # idempotent: same row, new source
        assert s.installed("a") == [("a", "1.0.0", "/new"), ("a", "2.0.0", "/two")]
        s.remove_installed("a", "1.0.0")
        s.remove_installed("a", "9.9.9")  # not installed: nothing to do
        assert s.installed("a") == [("a", "2.0.0", "/two")]
        s.set_active_version("a", "2.0.0")
        s.set_active_version("a", None)
        assert s.active_versions() == {}


def test_wal_mode_is_on_and_the_directory_is_private(tmp_path: Path) -> None:
    state_dir = tmp_path / "deep" / "state"
    with StateStore.open(state_dir) as s:
        assert s.path == state_dir / "state.db"
        s.add_event("a", "load")
        assert s._read("PRAGMA synchronous") == [(1,)]  # NORMAL
        # WAL is a property of the file: any other connection sees it too
        other = sqlite3.connect(s.path)
        try:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert other.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        finally:
            other.close()
    assert (state_dir.stat().st_mode & 0o777) == 0o700


def test_a_second_store_on_the_same_file_sees_committed_writes(tmp_path: Path) -> None:
    # e.g. `plugbay disable` from the CLI while a host is running
    with StateStore.open(tmp_path) as host, StateStore.open(tmp_path) as cli:
        cli.set_enabled("a", False, "operator")
        assert host.disabled() == {"a": "operator"}
        n = host.add_event("a", "disable")
        assert [e.id for e in cli.history("a")] == [n]


#: a copy put in place of the database that is not one (a restore by hand, cut short),
#: and the old file's -wal and -shm moved aside with it
_REPLACER = """
import os, sys
state = sys.argv[1]
with open(state + "/state.db.new", "wb") as f:
    f.write(b"half a copy " * 400)
os.replace(state + "/state.db.new", state + "/state.db")
for suffix in ("-wal", "-shm"):
    os.replace(state + "/state.db" + suffix, state + "/old.db" + suffix)
"""


def test_a_reader_whose_database_was_replaced_by_a_bad_one_says_so(tmp_path: Path) -> None:
    """It cannot open the new file: it read on from the old one, deleted, as if current."""
    with StateStore.open(tmp_path) as host:
        host.set_enabled("a", False, "before the replacement")
        with StateStore.open(tmp_path, read_only=True) as reader:
            assert reader.disabled() == {"a": "before the replacement"}
            subprocess.run([sys.executable, "-c", _REPLACER, str(tmp_path)], check=True)
            for _ in range(2):  # and again: never the old data
                with pytest.raises(StateError) as raised:
                    reader.disabled()
                said = str(raised.value)
                assert "the state database is damaged: it was replaced" in said, said
                assert "by a file that is not a usable SQLite database" in said


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        (SCHEMA_VERSION + 1, "newer than this plugbay understands"),
        (SCHEMA_VERSION - 1, "older than this plugbay reads"),
    ],
)
def test_a_reader_whose_database_was_replaced_by_another_schema_refuses_it(
    tmp_path: Path, schema: int, words: str
) -> None:
    """Reopened after the change, the file's schema went unchecked (a first open checks
    it): a database of another plugbay was read as if this one understood it."""
    with StateStore.open(tmp_path) as host:
        host.set_enabled("a", False, "before the replacement")
        with StateStore.open(tmp_path, read_only=True) as reader:
            assert reader.disabled() == {"a": "before the replacement"}
            other = sqlite3.connect(tmp_path / "other.db")
            try:
                host._connection().backup(other)
                other.execute("UPDATE plugins SET disabled_reason = 'another schema'")
                other.execute(f"PRAGMA user_version={schema}")
                other.commit()
            finally:
                other.close()
            os.replace(tmp_path / "other.db", tmp_path / "state.db")
            for suffix in ("-wal", "-shm"):
                os.replace(tmp_path / f"state.db{suffix}", tmp_path / f"old.db{suffix}")
            for _ in range(2):  # and again: never read
                with pytest.raises(StateError) as raised:
                    reader.disabled()
                said = str(raised.value)
                assert f"the state database has schema {schema}, {words}" in said, said


_WRITER = """
import sys
from pathlib import Path
from plugbay.state import StateStore

s = StateStore.open(Path(sys.argv[1]))
i = 0
while True:
    i += 1
    n = s.add_event("p", "load", version=f"1.0.{i}", details={"i": i, "pad": "x" * 500})
    s.set_config("p", {"last": n})
    print(n, flush=True)
"""


def test_kill_9_loses_nothing_that_was_committed(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)  # the writer is gone

    threading.Thread(target=read, daemon=True).start()
    acknowledged: list[int] = []
    try:
        while len(acknowledged) < 300:
            try:
                line = lines.get(timeout=10)
            except queue.Empty:
                line = None
            if line is None:
                break
            acknowledged.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: the writer never pauses
        proc.wait(timeout=10)
    problem = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert len(acknowledged) == 300, f"the writer stopped early: {problem}"
    assert proc.returncode == -signal.SIGKILL

    with StateStore.open(tmp_path) as s:
        assert s._read("PRAGMA integrity_check") == [("ok",)]
        events = s.history("p", limit=100_000)
        stored = {e.id: e for e in events}
        assert set(acknowledged) <= set(stored)
        assert stored[acknowledged[-1]].details["pad"] == "x" * 500
        assert [e.details["i"] for e in reversed(events)] == list(range(1, len(events) + 1))
        config = s.get_config("p")
        assert config is not None and config["last"] >= acknowledged[-1]
        assert s.add_event("p", "load") > max(stored)  # and it keeps working


def _truncated_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [("a" * 100,)] * 1000)
    db.commit()
    db.close()
    path.write_bytes(path.read_bytes()[:5000])


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_bytes(b"this is not sqlite\n" * 100),
        lambda p: p.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20),
        _truncated_database,
    ],
    ids=["text", "bad-header", "truncated"],
)
def test_a_file_that_is_not_a_database(tmp_path: Path, make: Callable[[Path], object]) -> None:
    path = tmp_path / "state.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(StateError) as err:
        StateStore.open(tmp_path)
    text = str(err.value)
    assert text.startswith("the state database is damaged: ")
    assert "refused, rather than taken as empty" in text
    assert str(path) in text and "move the file away" in text
    assert path.read_bytes() == before  # the user's file is left as it was


def test_an_empty_file_is_refused_not_taken_as_a_fresh_database(tmp_path: Path) -> None:
    """0 bytes is a truncated database: taking it as new would forget every disable."""
    (tmp_path / "state.db").touch()
    with pytest.raises(StateError, match=r"the file is empty \(0 bytes\)") as err:
        StateStore.open(tmp_path)
    assert str(tmp_path / "state.db") in str(err.value)
    assert (tmp_path / "state.db").stat().st_size == 0  # left as it was


def test_a_database_from_a_newer_plugbay(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match="newer than this plugbay understands") as err:
        StateStore.open(tmp_path)
    assert "upgrade plugbay" in str(err.value)
    assert str(tmp_path / "state.db") in str(err.value)
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
    db.close()


def test_unwritable_state_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot create the state directory") as err:
        StateStore.open(blocker / "state")
    assert str(blocker / "state") in str(err.value)


def test_writes_from_two_threads(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as s:
        ids: dict[str, list[int]] = {}

        def write(tag: str) -> None:
            mine = ids.setdefault(tag, [])
            for i in range(200):
                mine.append(s.add_event(tag, "load", version=f"1.0.{i}"))
                s.set_config(tag, {"i": i})
                s.history(tag, limit=5)

        threads = [threading.Thread(target=write, args=(t,)) for t in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(ids["a"]) | set(ids["b"])) == 400
        for tag in ("a", "b"):
            assert [e.id for e in s.history(tag, limit=1000)] == sorted(ids[tag], reverse=True)
            assert s.get_config(tag) == {"i": 199}
        assert s._read("PRAGMA integrity_check") == [("ok",)]


def test_unicode_and_huge_values_round_trip(tmp_path: Path) -> None:
    odd = "ünïcødé 🧩 עברית \u0000 nul \udcff lone-surrogate \n\t\"'\\"
    huge = "x" * 5_000_000
    details = {
        odd: [odd, {"nested": odd}],
        "huge": huge,
        "numbers": [0, -1, 2**62, 1.25],
        "path": Path("/tmp/x"),  # not JSON: kept as its text
    }
    with StateStore.open(tmp_path) as s:
        n = s.add_event("plugin-🧩", "config", version="1.0.0-ß", reason=odd, details=details)
        s.set_config("plugin-🧩", {"text": odd, "huge": huge})
        s.set_enabled("plugin-🧩", False, odd)
    with StateStore.open(tmp_path) as s:
        (event,) = s.history("plugin-🧩")
        # a lone surrogate cannot be UTF-8: plain columns keep it as an escape
        assert (event.id, event.version) == (n, "1.0.0-ß")
        assert event.reason == odd.replace("\udcff", "\\udcff")
        assert event.details == {**details, "path": "/tmp/x"}
        assert s.get_config("plugin-🧩") == {"text": odd, "huge": huge}
        assert s.disabled() == {"plugin-🧩": event.reason}


def test_a_config_that_is_not_json_is_refused(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as s:
        with pytest.raises(StateError, match="cannot be stored as JSON") as err:
            s.set_config("a", {"when": object()})
        assert err.value.plugin == "a"
        assert s.get_config("a") is None


def test_history_keeps_the_newest_events_of_every_plugin(tmp_path: Path) -> None:
    limit = 20
    with StateStore.open(tmp_path, history_limit=limit) as s:
        # alternate plugins so neither is the one that happens to hit a pruning round
        for i in range(150):
            s.add_event("a", "call", details={"i": i})
            s.add_event("b", "call", details={"i": i})
        for tag in ("a", "b"):
            kept = [e.details["i"] for e in s.history(tag, limit=1000)]
            assert limit <= len(kept) < limit + 100
            assert kept == list(range(149, 149 - len(kept), -1))  # the newest, newest first
    with StateStore.open(tmp_path, history_limit=limit) as s:
        s.add_event("a", "load")  # a plugin's first event after a restart prunes
        assert len(s.history("a", limit=1000)) == limit
        assert s.history("a")[0].action == "load"


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    s = StateStore.open(tmp_path)
    s.close()
    s.close()  # twice is fine
    with pytest.raises(StateError, match="the state store is closed"):
        s.add_event("a", "load")
    with pytest.raises(StateError, match="the state store is closed"):
        s.is_enabled("a")


def write_then_fail(s: StateStore) -> None:
    with s.batch():
        s.set_config("a", {"n": 1})
        raise RuntimeError("the caller's own failure")


def test_a_batch_commits_once_and_each_write_still_fails_alone(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as s:
        commits: list[str] = []
        s._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)  # type: ignore[union-attr]
        with s.batch():
            s.add_event("a", "load", version="1.0.0")
            s.record_installed("a", "1.0.0", "/plugins/a")
            with pytest.raises(StateError, match="cannot write"):  # a statement SQLite refuses
                s._write("INSERT INTO no_such_table VALUES (?)", (1,))
            with s.batch():  # nested: the same one
                s.set_active_version("a", "1.0.0")
        assert commits == ["COMMIT"]
        with pytest.raises(RuntimeError):  # what was written before stays
            write_then_fail(s)
    with StateStore.open(tmp_path) as again:  # committed: read back from the file
        assert [e.action for e in again.history("a")] == ["load"]
        assert again.installed("a") == [("a", "1.0.0", "/plugins/a")]
        assert again.active_versions() == {"a": "1.0.0"}
        assert again.get_config("a") == {"n": 1}
        assert again._read("PRAGMA integrity_check") == [("ok",)]


def test_another_threads_write_during_a_batch_lands_after_it(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as s:
        started = threading.Event()

        def other() -> None:
            started.set()
            s.add_event("b", "load", version="2.0.0")  # waits for the batch's commit

        with s.batch():
            first = s.add_event("a", "load", version="1.0.0")
            thread = threading.Thread(target=other)
            thread.start()
            assert started.wait(10)
            second = s.add_event("a", "fail", version="1.0.0", result="failed")
        thread.join(10)
        assert not thread.is_alive()
        events = s.history(limit=10)
        assert [(e.plugin_id, e.action) for e in events] == [
            ("b", "load"),
            ("a", "fail"),
            ("a", "load"),
        ]
        assert [e.id for e in events][1:] == [second, first]
