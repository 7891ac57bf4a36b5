"""Whether the process a leftover names still runs: a host's ``host.json``, a worker
cgroup's owner, a restore's copy (``runtime.lifecycle``, ``isolation._ray_cgroups``,
``state._leftovers``). One answer for all: another user's process runs too."""

from __future__ import annotations

import os

__all__ = ["running"]


def running(pid: int) -> bool:
    """Whether process ``pid`` exists (a signal-0 probe; a reused pid answers yes, so a
    caller keeps what it finds rather than removing it)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # none, or a number no pid can be
        return False
    except PermissionError:  # another user's process
        return True
    return True
