"""The state database is checked at start, backed up while the host runs, and restored with
``plugbay state restore``: a damaged one is refused, never taken silently as empty."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from plugbay.api.errors import StateError
from plugbay.runtime.host import Host
from plugbay.state import StateStore, list_backups
from plugbay.state.backups import check_database, restore, rolling_backup
from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


def corrupt_a_page(path: Path) -> None:
    """Garbage over the second page (the first table's root), as a torn write leaves."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(bytes(range(256)) * 16)


@pytest.fixture
def used_state(plugins: PluginFactory, tmp_path: Path) -> Path:
    """A state directory a host used: acme.one disabled, a grant, history, one backup."""
    plugins("acme.one", CODE)
    plugins("acme.two", CODE)
    state = tmp_path / ".plugbay"
    with StateStore.open(state) as store:
        store.set_enabled("acme.one", False, "maintenance")
        store.grant("acme.two", "network")
        store.add_event("acme.one", "disable", reason="maintenance")
        rolling_backup(store)
    return state


async def test_a_host_refuses_a_database_with_a_corrupted_page(
    used_state: Path, tmp_path: Path
) -> None:
    corrupt_a_page(used_state / "state.db")
    host = Host(plugins_dir=tmp_path / "plugins", state_dir=used_state)
    with pytest.raises(StateError, match="the state database is damaged") as err:
        await host.start()
    await host.stop()
    assert "refused, rather than taken as empty" in str(err.value)
    assert "'plugbay state restore' puts the newest of 1 backup(s) back" in str(err.value)
    assert str(used_state / "state.db") in str(err.value)


async def test_a_host_refuses_an_empty_database_and_a_missing_one_with_backups(
    used_state: Path, tmp_path: Path
) -> None:
    (used_state / "state.db").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (used_state / f"state.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(StateError, match=r"the file is empty \(0 bytes\)"):
        async with Host(plugins_dir=tmp_path / "plugins", state_dir=used_state):
            pass
    (used_state / "state.db").unlink()
    with pytest.raises(StateError, match="the state database is missing, but 1 backup"):
        async with Host(plugins_dir=tmp_path / "plugins", state_dir=used_state):
            pass
    assert not (used_state / "state.db").exists()  # nothing was made in its place


async def test_the_host_backs_up_at_start_and_a_deleted_database_refuses_changes(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.one", CODE)
    state = tmp_path / "state"
    async with Host(plugins_dir=tmp_path / "plugins", state_dir=state) as host:
        backups = list_backups(state)
        assert len(backups) == 1 and check_database(backups[0]).ok
        assert host.state is not None
        os.unlink(state / "state.db")
        with pytest.raises(StateError, match="was deleted or replaced while the host ran"):
            await host.disable("acme.one")
        # not applied: the change could not be kept
        assert await host.call("acme.one", "ping") == "pong"
        assert str(host.plugin("acme.one").state) == "active"


async def test_hosts_that_start_often_do_not_roll_the_older_backups_out(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """Each start took a backup, so six one-shot commands (plugbay call, metrics, …)
    in a minute left six copies of the same minute and none from before."""
    plugins("acme.one", CODE)
    state = tmp_path / "state"
    for _ in range(3):
        async with Host(plugins_dir=tmp_path / "plugins", state_dir=state):
            pass
    [only] = list_backups(state)  # one start's backup serves the next ten minutes
    an_hour_ago = time.time() - 3600
    os.utime(only, (an_hour_ago, an_hour_ago))
    async with Host(plugins_dir=tmp_path / "plugins", state_dir=state):
        pass
    newest, older = list_backups(state)
    assert older == only and check_database(newest).ok  # an old one: a new backup


def test_backups_roll(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        for i in range(9):
            store.add_event("acme.one", "load", reason=str(i))
            rolling_backup(store, keep=3)
    kept = list_backups(tmp_path)
    assert len(kept) == 3
    newest = sqlite3.connect(kept[0])
    assert newest.execute("SELECT count(*) FROM history").fetchone() == (9,)


def test_state_check_and_restore_bring_the_disables_back(used_state: Path, tmp_path: Path) -> None:
    cwd = tmp_path
    good = plugbay("state", "check", cwd=cwd)
    assert good.returncode == 0, good.stderr
    assert "the state database is sound (1 backup kept)" in good.stdout

    corrupt_a_page(used_state / "state.db")
    damaged = plugbay("state", "check", "--json", cwd=cwd)
    assert damaged.returncode == 1
    report = json.loads(damaged.stdout)
    assert report["database"]["ok"] is False and report["database"]["problems"]
    assert [b["ok"] for b in report["backups"]] == [True]
    listed = plugbay("list", cwd=cwd)
    assert listed.returncode == 1 and "the state database is damaged" in listed.stderr

    restored = plugbay("state", "restore", cwd=cwd)
    assert restored.returncode == 0, restored.stderr
    assert "restored the state database from" in restored.stdout
    assert list(used_state.glob("state.db.replaced-*"))  # the damaged file is kept
    assert plugbay("state", "check", cwd=cwd).returncode == 0
    # what the damaged file revoked since the backup cannot be read: the operator is told
    assert "could not be read" in restored.stdout and "token list" in restored.stdout
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "maintenance"}
        assert store.grants("acme.two") == ["network"]


def test_a_restore_keeps_revoked_what_was_revoked_after_the_backup(
    used_state: Path, tmp_path: Path
) -> None:
    """A backup from before a token or a permission was revoked must not hand it out
    again: the restore brings the plugins' state back, the revocations stay."""
    with StateStore.open(used_state) as store:
        store.add_api_token("leaked", "d" * 64, ["admin"], "leaked", None)
        store.add_api_token("kept", "e" * 64, ["read"], None, None)
        store.grant("acme.one", "subprocess")
        rolling_backup(store)  # the backup: both tokens valid, both grants held
        store.revoke_api_token("leaked")
        store.revoke("acme.two", "network")
        store.set_enabled("acme.one", True)  # a change the restore is asked to undo
    restored = plugbay("state", "restore", "--json", cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    report = json.loads(restored.stdout)
    assert report["revoked_again"] == {"tokens": ["leaked"], "grants": [["acme.two", "network"]]}
    assert report["revocations_unread"] is None
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "maintenance"}  # the backup's state is back
        tokens = {t["id"]: t for t in store.api_tokens()}
        assert tokens["leaked"]["revoked"] is not None and tokens["kept"]["revoked"] is None
        assert store.grants("acme.two") == [] and store.grants("acme.one") == ["subprocess"]


def test_restore_refuses_a_damaged_backup(used_state: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    with pytest.raises(StateError, match="the backup does not pass its check"):
        restore(used_state, bad)
    result = plugbay("state", "restore", "--from", str(bad), cwd=tmp_path)
    assert result.returncode == 1 and "does not pass its check" in result.stderr
    assert check_database(used_state / "state.db").ok  # untouched


async def test_a_host_that_opens_and_stops_at_once_still_leaves_its_backup_whole(
    used_state: Path, tmp_path: Path
) -> None:
    # the backup of open() is taken in a thread beside the start: stop() waits for it,
    # so it is neither cut short nor left as a '.part' file, and the state it copied
    # closes only after it
    for kept in list_backups(used_state):  # older than the interval: the start takes one
        os.utime(kept, (time.time() - 3600, time.time() - 3600))
    host = Host(plugins_dir=tmp_path / "plugins", state_dir=used_state)
    await host.open()
    await host.stop()
    backups = list_backups(used_state)
    assert len(backups) == 2 and all(check_database(b).ok for b in backups)
    assert not list((used_state / "backups").glob("*.part"))
    with StateStore.open(used_state) as store:  # what it copied is still the host's
        assert not store.is_enabled("acme.one")


def test_a_backup_taken_while_the_host_writes_is_whole(tmp_path: Path) -> None:
    # the pages are copied under the store's lock, the copy made durable outside it:
    # writes go on meanwhile, and the backup is a checkable snapshot holding every write
    # committed before it began
    import threading

    with StateStore.open(tmp_path / "state") as store:
        for i in range(50):
            store.add_event("acme.one", "load", version=f"1.0.{i}")
        done = threading.Event()

        def write() -> None:
            i = 0
            while not done.is_set():
                store.add_event("acme.two", "load", version=f"2.0.{i}")
                i += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            made = [rolling_backup(store) for _ in range(3)]
        finally:
            done.set()
            writer.join()
        assert not list((tmp_path / "state" / "backups").glob("*.part"))
    for backup in made:
        assert check_database(backup).ok
        copy = StateStore(backup, check=True)
        try:
            assert len(copy.history("acme.one", limit=100)) == 50
        finally:
            copy.close()


def test_a_manual_backup_is_listed_restorable_and_outlives_the_automatic_ones(
    used_state: Path, tmp_path: Path
) -> None:
    taken = plugbay("state", "backup", cwd=tmp_path)
    assert taken.returncode == 0, taken.stderr
    [manual] = [b for b in list_backups(used_state) if b.name.endswith("-manual.db")]
    # the path under the state directory as --state names it (here the default, .plugbay)
    assert f"backed up the state database to {manual.relative_to(tmp_path)} (" in taken.stdout
    assert "kept until you delete it" in taken.stdout
    as_json = json.loads(plugbay("state", "backup", "--json", cwd=tmp_path).stdout)
    assert as_json["ok"] is True and as_json["backup"].startswith(".plugbay/backups/")
    assert as_json["size"] == (tmp_path / as_json["backup"]).stat().st_size
    listed = json.loads(plugbay("state", "check", "--json", cwd=tmp_path).stdout)["backups"]
    kinds = {Path(b["path"]).name: b["manual"] for b in listed}
    assert kinds[manual.name] is True and sum(kinds.values()) == 2  # the fixture's is not
    # a host running for days rolls its own backups: the manual ones stay
    with StateStore.open(used_state) as store:
        store.set_enabled("acme.one", True)  # after the manual backup
        for _ in range(8):
            rolling_backup(store, keep=3)
    kept = list_backups(used_state)
    assert manual in kept and tmp_path / as_json["backup"] in kept
    assert len([b for b in kept if not b.name.endswith("-manual.db")]) == 3
    back = plugbay("state", "restore", "--from", str(manual), cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "maintenance"}  # as the manual backup had it


def test_a_manual_backup_without_a_database_says_there_is_none(tmp_path: Path) -> None:
    done = plugbay("state", "backup", "--state", str(tmp_path / "nothing"), cwd=tmp_path)
    assert done.returncode == 1 and "there is no state database here" in done.stderr
    assert not (tmp_path / "nothing").exists()  # nothing made


def test_a_manual_backup_beside_a_running_host_is_whole_and_the_host_goes_on(
    used_state: Path, tmp_path: Path
) -> None:
    with plugbay_run(tmp_path) as host:
        taken = json.loads(plugbay("state", "backup", "--json", cwd=tmp_path).stdout)
        backup = tmp_path / taken["backup"]
        assert check_database(backup).ok
        copy = StateStore(backup, read_only=True)
        try:  # what the host had written by then is in it: its start of acme.two
            assert "load" in {e.action for e in copy.history("acme.two", limit=100)}
            assert not copy.is_enabled("acme.one")
        finally:
            copy.close()
        called = plugbay("call", "acme.two", "ping", cwd=tmp_path)
        assert called.returncode == 0 and called.stdout == "pong\n"
        assert plugbay("disable", "acme.two", cwd=tmp_path).returncode == 0  # it still writes
        assert host.proc.poll() is None
    assert check_database(used_state / "state.db").ok
    assert backup in list_backups(used_state)  # the host's own backups left it alone


def test_state_check_leaves_only_the_backups_in_backups(used_state: Path) -> None:
    """`plugbay state check` (and a restore choosing its backup) read each backup and left
    a `-wal` and a `-shm` beside every one; an empty pair an older check left goes too."""
    cwd = used_state.parent
    assert plugbay("state", "backup", cwd=cwd).returncode == 0  # a manual one beside
    backups = sorted(p.name for p in list_backups(used_state))
    assert len(backups) == 2
    oldest = used_state / "backups" / backups[0]
    for suffix in ("-wal", "-shm"):  # as an older plugbay's check left them
        oldest.with_name(oldest.name + suffix).write_bytes(b"")
    checked = plugbay("state", "check", cwd=cwd)
    assert checked.returncode == 0, checked
    assert "(2 backups kept)" in checked.stdout
    assert sorted(p.name for p in (used_state / "backups").iterdir()) == backups
    assert plugbay("state", "restore", cwd=cwd).returncode == 0
    assert sorted(p.name for p in (used_state / "backups").iterdir()) == backups
    assert plugbay("state", "check", cwd=cwd).returncode == 0  # the restored one is sound


async def test_a_restore_is_refused_beside_an_applications_host_and_changes_nothing(
    used_state: Path, tmp_path: Path
) -> None:
    """An application's Host announces nothing in host.json: the restore went ahead under
    it, moving its database away, and the host refused every change after."""
    async with Host(plugins_dir=tmp_path / "plugins", state_dir=used_state) as host:
        refused = await asyncio.to_thread(plugbay, "state", "restore", cwd=tmp_path)
        assert refused.returncode == 1
        assert f"a host (pid {os.getpid()}) serves .plugbay" in refused.stderr
        assert "stop that host first" in refused.stderr
        assert not [p for p in os.listdir(used_state) if p.startswith("state.db.replaced")]
        await host.enable("acme.one")  # the host's database is still its own
        assert await host.call("acme.one", "ping") == "pong"
    with StateStore.open(used_state) as store:
        assert store.is_enabled("acme.one")


def test_a_restore_from_the_database_itself_is_refused_and_leaves_it_in_place(
    used_state: Path, tmp_path: Path
) -> None:
    """``--from .plugbay/state.db`` moved the database aside, then could not copy it: no
    state.db at all, and an error blaming the disk."""
    done = plugbay("state", "restore", "--from", ".plugbay/state.db", cwd=tmp_path)
    assert done.returncode == 1
    assert "--from names the state database itself, not a backup of it" in done.stderr
    assert not list(used_state.glob("state.db.replaced-*"))
    with StateStore.open(used_state) as store:
        assert store.disabled() == {"acme.one": "maintenance"}
    folder = plugbay("state", "restore", "--from", ".plugbay", cwd=tmp_path)
    assert folder.returncode == 2  # a usage error, as of every path option
    assert "'.plugbay' is a directory; it takes a backup file" in " ".join(folder.stderr.split())
