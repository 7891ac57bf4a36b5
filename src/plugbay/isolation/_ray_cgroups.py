"""The worker cgroups a Ray node's agent makes (``isolation._ray_agent``), and what an
ended agent left of them.

A worker's cgroup (``plugbay/<plugin>-h<pid>-<nonce>``, ``isolation._cgroups``) names the
process that owns it, so that a later one can tell a dead owner's from a live one's. The
host names itself; on a node, the host's pid means nothing (it runs on another machine,
or is a different process here), so the agent names the cgroup by its own pid: its
workers end with it (``isolation.zygote``). An agent killed outright (an OOM killer)
removes none of its workers' cgroups; the next agent on the node removes those of agents
no longer running, with ``rmdir`` alone, which fails on a cgroup that still holds a
process: nothing is killed from here, and a cgroup in use stays.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from plugbay.isolation import _cgroups
from plugbay.state.pids import running

__all__ = ["name_by_agent", "sweep_ended_agents"]

log = logging.getLogger("plugbay.isolation.ray")

#: the owner's pid in a worker's cgroup name (``_cgroups.worker_name``)
_OWNER = re.compile(r"-h\d+-([0-9a-f]{8})$")


def name_by_agent(request: dict[str, Any]) -> None:
    """A sandboxed worker's request: its cgroup named by this agent's pid, not the host's."""
    sandbox = request.get("sandbox")
    if sandbox is not None and sandbox.get("cgroup"):
        sandbox["cgroup"] = _OWNER.sub(rf"-h{os.getpid()}-\1", sandbox["cgroup"])


def sweep_ended_agents() -> list[str]:
    """Remove the empty worker cgroups of agents no longer running on this node; returns
    their names. One still holding a process is left as it is (``rmdir`` refuses it)."""
    try:
        groups = _cgroups.discover()
    except (_cgroups.CgroupUnavailable, OSError):
        return []  # no cgroups here: no worker made one
    removed = []
    for name in _cgroups.orphaned(groups, alive=running):
        try:
            dirs = groups.dirs(name)
        except ValueError:  # not a name plugbay makes
            continue
        kept = False
        for path in dirs.values():
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:  # EBUSY: a process is in it
                kept = True
        if not kept:
            removed.append(name)
    if removed:
        log.info("removed %d empty worker cgroup(s) of ended agents: %s", len(removed), removed)
    return removed
