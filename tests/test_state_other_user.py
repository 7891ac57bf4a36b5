"""The state of another user's host, read by an operator (``state/_sqlite.py``
``connect_read_only``, ``refreshed``): a real ``plugbay run`` as root writes, a reader
forked here and switched to another uid (``os.setuid``) reads, as ``plugbay logs
--follow`` or ``plugbay history`` do beside a service account's host.

The reader cannot write the state directory nor the host's -shm. Opened while that host
was stopped (no -shm), the database was read ``immutable``: what the host wrote once it
started never showed. Opened beside a running host, a restart of the host left the
reader on the old, deleted -wal. And a -wal the reader cannot read was skipped silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugbay.api.errors import PlugbayError
from plugbay.state import StateStore, _snapshot
from tests._cli import plugbay
from tests._running import plugbay_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root"),
]

#: the operator: a uid and group of nobody on this machine, not the host's (root)
OPERATOR = 4242

PLUGIN = """from plugbay import UtilityPlugin, command


class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory the operator may enter (pytest's own temp dirs are root's alone), with
    a plugin, and the host's state made once (then opened to others, as an operator's
    group would be let in)."""
    where = Path(tempfile.mkdtemp(prefix="plugbay-other-user-", dir="/tmp"))
    try:
        os.chmod(where, 0o755)
        plugin = where / "plugins" / "acme.ping"
        plugin.mkdir(parents=True)
        (plugin / "plugin.toml").write_text(
            'id = "acme.ping"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
        )
        (plugin / "main.py").write_text(PLUGIN)
        with plugbay_run(where):
            pass
        os.chmod(where / ".plugbay", 0o755)
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


class Operator:
    """A process of another uid holding the state open read-only, reading on request;
    its temporary files in ``tmp`` (its ``TMPDIR``) when given."""

    def __init__(self, state: Path, tmp: Path | None = None) -> None:
        # what a read imports, imported now: the operator cannot read root's interpreter
        scratch = Path(tempfile.mkdtemp())
        try:
            StateStore.open(scratch).close()
            with StateStore.open(scratch, read_only=True) as store:
                store.history(limit=1)
        finally:
            shutil.rmtree(scratch)
        asks, self._asks = os.pipe()
        self._answers, answers = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.close(self._asks)
            os.close(self._answers)
            self._serve(state, asks, answers, tmp)
        os.close(asks)
        os.close(answers)
        self._reply = os.fdopen(self._answers, "r")

    @staticmethod
    def _serve(state: Path, asks: int, answers: int, tmp: Path | None) -> None:
        code = 0
        try:
            os.setgroups([])
            os.setgid(OPERATOR)
            os.setuid(OPERATOR)
            if tmp is not None:
                tempfile.tempdir = str(tmp)
            store: StateStore | None = None
            while (ask := os.read(asks, 1)) in (b"r", b"c"):
                if ask == b"c":  # the reader ends: logs --follow interrupted
                    if store is not None:
                        store.close()
                    store = None
                    os.write(answers, b"null\n")
                    continue
                try:
                    if store is None:  # opened once, read again and again: logs --follow
                        store = StateStore.open(state, read_only=True)
                    said = [e.reason for e in store.history(limit=1000)]
                except PlugbayError as exc:
                    said = {"error": str(exc), "hint": exc.hint}  # type: ignore[assignment]
                os.write(answers, (json.dumps(said) + "\n").encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)

    def read(self) -> object:
        """The reasons of the history as the operator reads it now, or its error."""
        os.write(self._asks, b"r")
        return json.loads(self._reply.readline())

    def close_store(self) -> None:
        """The operator closes its store (and stays, to be asked again)."""
        os.write(self._asks, b"c")
        assert json.loads(self._reply.readline()) is None

    def close(self) -> None:
        os.write(self._asks, b"q")
        os.close(self._asks)
        self._reply.close()
        os.waitpid(self.pid, 0)


@pytest.fixture
def operator(site: Path) -> Iterator[Operator]:
    reader = Operator(site / ".plugbay")
    yield reader
    reader.close()


def _disable(site: Path, reason: str) -> None:
    done = plugbay("disable", "acme.ping", "--reason", reason, cwd=site)
    assert done.returncode == 0, done.stdout + done.stderr
    done = plugbay("enable", "acme.ping", cwd=site)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_operator_reading_while_the_host_starts_and_restarts_sees_what_it_wrote(
    site: Path, operator: Operator
) -> None:
    before = operator.read()  # the host is stopped: no -shm, the directory is not theirs
    assert isinstance(before, list) and "first run" not in before
    with plugbay_run(site):
        _disable(site, "first run")
        assert "first run" in operator.read()  # type: ignore[operator]
    assert "first run" in operator.read()  # type: ignore[operator]
    with plugbay_run(site):  # a new -wal and -shm
        _disable(site, "second run")
        assert "second run" in operator.read()  # type: ignore[operator]


def test_a_wal_the_operator_cannot_read_is_refused_not_skipped(site: Path) -> None:
    with plugbay_run(site) as host:
        _disable(site, "in the wal")
        (host.state / "state.db-wal").chmod(0o600)  # made before state.db was opened up
        reader = Operator(host.state)
        try:
            said = reader.read()
        finally:
            reader.close()
    assert isinstance(said, dict), said
    assert "state.db-wal beside it is not readable by this user (uid 4242)" in said["error"]
    assert "since its last checkpoint would be missing" in said["error"]
    assert said["hint"].startswith("make state.db-wal and state.db-shm readable by this user")


#: what a host killed with SIGKILL leaves: a commit in the -wal, no checkpoint (or, with
#: a checkpoint argument, all of it checkpointed: the -wal's frames are still there)
KILLED_HOST = """
import os, sys
from pathlib import Path
from plugbay.state import StateStore
store = StateStore.open(Path(sys.argv[1]))
store.set_enabled("acme.ping", False, "only in the wal", event=("disable", None))
if sys.argv[2:]:
    store._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
os._exit(0)
"""


def _killed(state: Path, *, checkpointed: bool) -> dict[str, tuple[bytes, int]]:
    """A host of root's killed, its -shm gone; what its state.db and -wal hold then."""
    more = ["checkpointed"] if checkpointed else []
    subprocess.run([sys.executable, "-c", KILLED_HOST, str(state), *more], check=True)
    assert (state / "state.db-wal").stat().st_size > 0
    (state / "state.db-shm").unlink()
    return {
        name: ((state / name).read_bytes(), (state / name).stat().st_mtime_ns)
        for name in ("state.db", "state.db-wal")
    }


@pytest.fixture
def copies(site: Path) -> Path:
    """The operator's own temporary directory (its TMPDIR), to see its copies in."""
    where = site / "operator-tmp"
    where.mkdir(mode=0o700)
    os.chown(where, OPERATOR, OPERATOR)
    return where


@pytest.mark.parametrize("checkpointed", [False, True], ids=["not-checkpointed", "checkpointed"])
def test_a_wal_left_without_its_shm_is_read_from_a_private_copy(
    site: Path, copies: Path, checkpointed: bool
) -> None:
    """A host killed before its checkpoint (or after a passive one), its -shm gone:
    SQLite reads a -wal only through a -shm, which the operator cannot make there. The
    reader was refused, though the database was complete once checkpointed: it reads a
    copy of its own instead, gone when it closes; the host's files are left as they were."""
    state = site / ".plugbay"
    before = _killed(state, checkpointed=checkpointed)
    reader = Operator(state, tmp=copies)
    try:
        said = reader.read()
        assert isinstance(said, list) and "only in the wal" in said, said
        assert [p.name for p in copies.iterdir()], "no copy was read"
        assert "only in the wal" in reader.read()  # type: ignore[operator]
        reader.close_store()
        assert list(copies.iterdir()) == []  # the copy is gone with the store
    finally:
        reader.close()
    after = {
        name: ((state / name).read_bytes(), (state / name).stat().st_mtime_ns) for name in before
    }
    assert after == before
    assert not (state / "state.db-shm").exists()


@pytest.mark.parametrize(
    ("bound", "value"),
    [("SNAPSHOT_LIMIT", 4096), ("_SHM_ROOM", 1 << 60)],
    ids=["too-large", "no-room-in-tmp"],
)
def test_a_wal_too_large_to_copy_is_said_not_shown_as_the_last_checkpoint(
    site: Path, copies: Path, monkeypatch: pytest.MonkeyPatch, bound: str, value: int
) -> None:
    """Past the copy's limit, or with too little room on the temporary disk, the reader
    is refused as before: opened ``immutable``, the history would lack what the -wal
    holds and say nothing of it."""
    state = site / ".plugbay"
    _killed(state, checkpointed=False)
    monkeypatch.setattr(_snapshot, bound, value)  # the reader is forked below
    reader = Operator(state, tmp=copies)
    try:
        said = reader.read()
    finally:
        reader.close()
    assert isinstance(said, dict), said
    assert "state.db-wal beside it holds changes not yet checkpointed" in said["error"]
    assert "this user (uid 4242) cannot make in this directory" in said["error"]
    assert "the newest changes cannot be shown" in said["error"]
    assert said["hint"].startswith("read it as the host's user")
    assert list(copies.iterdir()) == []
    with StateStore.open(state, read_only=True) as store:  # the host's user reads it all
        assert "only in the wal" in [e.reason for e in store.history(limit=1000)]


def test_a_database_replaced_while_no_host_runs_is_read_anew(
    site: Path, operator: Operator
) -> None:
    """With no -shm (the host stopped) the reader opened it ``immutable`` and noticed a
    change only by the -shm: a state.db put in its place (a restore, a copy) went unseen
    until the reader was started again."""
    state = site / ".plugbay"
    assert "restored" not in operator.read()  # type: ignore[operator]
    with StateStore.open(site / "elsewhere") as other:
        other.set_enabled("acme.ping", False, "restored", event=("disable", None))
    (site / "elsewhere" / "state.db").chmod(0o644)
    os.replace(site / "elsewhere" / "state.db", state / "state.db")
    assert not (state / "state.db-shm").exists()
    assert "restored" in operator.read()  # type: ignore[operator]
