"""What a restore that crashed partway left in the state directory, removed.

A restore (``state.backups.restore``) copies the backup to its own
``state.db.restoring-<pid>-<tid>`` (with ``-journal`` / ``-wal`` / ``-shm`` while SQLite
writes it), then claims ``state.db.replaced-<UTC second>[-N]`` (made empty, on purpose:
the name is its own before the database is moved onto it). A process killed in between
leaves the copy, which may be as large as the database, and the empty claim, for ever.

The rule, the simplest that is safe without an owner written in the claim:

* a ``restoring`` file is removed when the pid in its name is not running (a live
  restore's, this process's other threads' too, is kept; a pid reused since is kept,
  which costs disk space, never a restore);
* an empty ``replaced`` claim is removed only when it is older than a minute **and** no
  ``restoring`` file of a running pid is in the directory: a restore holds its
  ``restoring`` file from before it claims its name until after the claim holds the
  replaced database (or is removed), so a claim with no running restore beside it has no
  owner that can still use it. A claim with a ``-wal`` or ``-shm`` beside it is kept (it
  is a replaced database's name, not an empty claim).

Run at each restore and at a host's start (one ``os.scandir`` of the state directory).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Final

from plugbay.state.pids import running

__all__ = ["CLAIM_AGE_S", "remove_restore_leftovers"]

log = logging.getLogger("plugbay.state")

#: how old an empty claim must be before it can be removed (a live one lasts seconds)
CLAIM_AGE_S: Final = 60.0

_RESTORING = re.compile(r"state\.db\.restoring-(\d+)-\d+(?:-journal|-wal|-shm)?")
_CLAIM = re.compile(r"state\.db\.replaced-\d{8}T\d{6}(?:-\d+)?")


def remove_restore_leftovers(state_dir: Path) -> list[str]:
    """Remove a crashed restore's leftovers in ``state_dir`` (see the module doc); the
    names removed. A file that cannot be removed is left as it is."""
    try:
        with os.scandir(state_dir) as entries:
            names = {entry.name: entry for entry in entries}
    except OSError:  # no directory yet, or unreadable: nothing to tidy here
        return []
    dead, restoring = _restoring_copies(names)
    claims = [] if restoring else _ownerless_claims(names)
    removed = [name for name in dead + claims if _removed(state_dir / name)]
    if removed:
        log.info("removed what restores that did not finish left in %s: %s",
                 state_dir, ", ".join(sorted(removed)))  # fmt: skip
    return removed


def _restoring_copies(names: dict[str, os.DirEntry[str]]) -> tuple[list[str], bool]:
    """The restore copies of pids no longer running; whether one of a running pid is here."""
    dead: list[str] = []
    restoring = False
    for name in names:
        found = _RESTORING.fullmatch(name)
        if found is None:
            continue
        if running(int(found.group(1))):
            restoring = True
        else:
            dead.append(name)
    return dead, restoring


def _ownerless_claims(names: dict[str, os.DirEntry[str]]) -> list[str]:
    """The empty ``replaced`` claims over :data:`CLAIM_AGE_S` old, with no ``-wal`` or
    ``-shm`` beside them (call only when no running restore's copy is here)."""
    old = time.time() - CLAIM_AGE_S
    claims = []
    for name, entry in names.items():
        if not _CLAIM.fullmatch(name) or f"{name}-wal" in names or f"{name}-shm" in names:
            continue
        with contextlib.suppress(OSError):
            st = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and st.st_size == 0 and st.st_mtime < old:
                claims.append(name)
    return claims


def _removed(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:  # removed meanwhile (another restore, or host, tidied it)
        return False
    except OSError as exc:
        log.warning("could not remove %s, left by a restore that did not finish: %s; "
                    "remove it by hand", path, exc.strerror)  # fmt: skip
        return False
    return True
