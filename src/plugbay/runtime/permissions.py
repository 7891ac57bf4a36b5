"""One view of a plugin's permissions, in layers, and the grant and revoke that change them.

The layers (``permissions`` of ``plugbay info --json`` and of the API's plugin detail;
of every plugin at once in ``plugbay grants`` and ``GET /api/v1/permissions``):

* what its manifest **asks** for (``[permissions]``);
* what is **granted**, each grant with where it comes from: ``[policy.grants]`` of the
  host config file (the file named; only an edit of it takes it back), the state
  database (``plugbay grant``, the API, the dashboard; by whom and when), or the host's
  trust in the plugin's code (an inline plugin's ``host:*`` permissions);
* what is **in force** in its running worker (the policy it was started under), and
  what it gets at its **next start** or reload (the grants as they are now): a grant
  kept while a host ran without an API, for instance, waits for the next start;
* what it asks for and is not granted: **pending** the operator's answer, or **denied**;
  or, for a plugin that runs with no sandbox (trusted: inline, or a worker the policy
  does not sandbox), **unconfined**: what only a sandbox enforces (network, files,
  subprocess) limits nothing there, so it has it whether granted or not.

Every figure is read when asked, from the state and the policy, never from a copy made
at start: a grant or revoke made since, by this host or by another process, is shown.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import ConfigError, PlugbayError, PluginStateError
from plugbay.isolation.policy import IsolationPolicy, covers, grant_refusal, in_effect
from plugbay.state import StateStore

if TYPE_CHECKING:
    from pathlib import Path

    from plugbay.isolation.policy import Placement
    from plugbay.model.manifest import PluginManifest
    from plugbay.runtime.host import Host
    from plugbay.runtime.manager import PluginManager
    from plugbay.runtime.records import PluginRecord

__all__ = [
    "Kept",
    "change_grant",
    "every_plugin",
    "kept_decisions",
    "layered",
    "permissions_of",
    "refusal_to_revoke",
    "unconfined_in",
    "unconfined_of",
]

#: the history's actions that decide a permission (the newest one stands)
_DECISIONS: Final = frozenset({"grant", "revoke", "deny"})
#: the permissions only a sandbox enforces (Landlock, seccomp, the network filter): with
#: none, nothing limits them (``env:``, ``secret:`` and ``host:`` are what the host hands
#: over, sandbox or not)
_SANDBOX_KINDS: Final = ("network:", "read:", "write:", "subprocess")


def unconfined_in(placement: Placement) -> str | None:
    """Where a plugin placed so runs with no sandbox (``inline``: in the host's own
    process; ``process``, ``ray``: a worker the policy does not sandbox), None when it is
    sandboxed."""
    return None if placement.sandboxed else placement.isolation


@dataclass(frozen=True)
class Kept:
    """What the state keeps of one plugin's permissions."""

    #: permission → when it was granted
    granted: dict[str, float] = field(default_factory=dict)
    #: permission → who granted it (the newest grant event says)
    by: dict[str, str] = field(default_factory=dict)
    #: what the operator denied and has not granted or revoked since
    denied: frozenset[str] = frozenset()
    #: the state database's file
    file: str | None = None


def kept_decisions(state: StateStore | None, plugin_id: str) -> Kept:
    """The plugin's grants in the state, who made each, and its denials (``POST
    /api/v1/plugins/ID/deny``): the newest of a permission's grant, revoke and deny
    events stands."""
    if state is None:
        return Kept()
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    for event in state.history(plugin_id, limit=state.history_limit):  # newest first
        if event.action in _DECISIONS and event.reason and event.reason not in newest:
            newest[event.reason] = (event.action, event.details)
    granted = state.grant_times(plugin_id)
    return Kept(
        granted=granted,
        by={
            p: str(details["by"])
            for p, (action, details) in newest.items()
            if action == "grant" and p in granted and details.get("by")
        },
        denied=frozenset(p for p, (action, _) in newest.items() if action == "deny"),
        file=os.path.abspath(state.path),
    )


def permissions_of(manager: PluginManager, rec: PluginRecord) -> dict[str, Any]:
    """The layered view of a plugin the host knows (see the module docstring)."""
    manifest = rec.manifest
    policy = manager.settings.policy
    kept = kept_decisions(manager.state, rec.id)
    if manifest is None:
        return layered(rec.id, (), policy, kept, trust=None, in_force=None)
    judged = manager.store.as_kept_from(manifest) if manager.store is not None else manifest
    running = rec.placement if rec.handle is not None else None
    return layered(
        rec.id,
        manifest.permissions.asked(),
        policy,
        kept,
        trust=policy.trusted(judged, manager.settings.plugin_dirs),
        in_force=running.effective if running is not None else None,
        unconfined=unconfined_of(rec.placement, policy, judged, manager.settings.plugin_dirs),
    )


def unconfined_of(
    placement: Placement | None,
    policy: IsolationPolicy,
    manifest: PluginManifest,
    plugin_dirs: Sequence[Path],
) -> str | None:
    """:func:`unconfined_in` of where it was placed, else of where the policy places it
    (None when it cannot be placed at all: it does not run)."""
    if placement is None:
        try:
            placement = policy.place(manifest, plugin_dirs)
        except PlugbayError:
            return None
    return unconfined_in(placement)


def every_plugin(manager: PluginManager) -> list[dict[str, Any]]:
    """Each plugin the host knows, by id, with its view: ``GET /api/v1/permissions`` and
    ``plugbay grants`` beside a running host."""
    return [
        {
            "id": rec.id,
            "version": rec.version,
            "state": str(rec.state),
            "permissions": permissions_of(manager, rec),
        }
        for rec in manager.list_plugins()
    ]


def layered(
    plugin_id: str,
    asked: Sequence[str],
    policy: IsolationPolicy,
    kept: Kept,
    *,
    trust: str | None,
    in_force: Sequence[str] | None,
    unconfined: str | None = None,
) -> dict[str, Any]:
    """The view from its parts; ``in_force`` None: no worker of it runs (or, with no host
    to ask, it is not known); ``unconfined``: where it runs with no sandbox
    (:func:`unconfined_in`), None when sandboxed."""
    grants = _grants(plugin_id, asked, policy, kept, trust)
    granted = list(dict.fromkeys(g["permission"] for g in grants))
    next_start = list(in_effect(asked, granted, trusted=trust is not None))
    for grant in grants:
        grant["asked"] = _any_covered(grant["permission"], asked)
        grant["in_force"] = (
            None if in_force is None else _any_covered(grant["permission"], in_force)
        )
    waiting, free = _not_granted(asked, next_start, unconfined)
    now = list(in_force) if in_force is not None else None
    return {
        "asked": list(asked),
        "granted": granted,
        "effective": now if now is not None else next_start,
        "in_force": now,
        "next_start": next_start,
        "at_next_start": _changes(now, next_start),
        "pending": [p for p in waiting if p not in kept.denied],
        "denied": [p for p in waiting if p in kept.denied],
        "unasked": [g for g in granted if not _any_covered(g, asked)],
        "unconfined_in": unconfined,
        "unconfined": free,
        "grants": grants,
    }


def _not_granted(
    asked: Sequence[str], next_start: Sequence[str], unconfined: str | None
) -> tuple[list[str], list[str]]:
    """What is asked and granted by nothing: waiting for the operator, and, with no
    sandbox, what only a sandbox would limit (not waiting for anything: it has it)."""
    waiting = [p for p in asked if p not in next_start]
    if unconfined is None:
        return waiting, []
    free = [p for p in waiting if p.startswith(_SANDBOX_KINDS)]
    return [p for p in waiting if p not in free], free


def _any_covering(grants: Iterable[str], permission: str) -> bool:
    return any(covers(g, permission) for g in grants)


def _any_covered(grant: str, permissions: Iterable[str]) -> bool:
    return any(covers(grant, p) for p in permissions)


def _changes(now: list[str] | None, next_start: list[str]) -> dict[str, list[str]]:
    """What its next start gains and loses against what is in force now (nothing when no
    worker of it runs: all of it is what it starts with)."""
    if now is None:
        return {"gains": [], "loses": []}
    return {
        "gains": [p for p in next_start if p not in now],
        "loses": [p for p in now if p not in next_start],
    }


def _grants(
    plugin_id: str,
    asked: Sequence[str],
    policy: IsolationPolicy,
    kept: Kept,
    trust: str | None,
) -> list[dict[str, Any]]:
    """Each grant and where it comes from: the host config, the state, the host's trust."""
    from_file = policy.origin if os.path.isabs(policy.origin) else None
    config = [
        _grant(p, "config", f"[policy.grants] in {policy.origin}", file=from_file)
        for p in policy.grants.get(plugin_id, ())
    ]
    state = [
        _grant(p, "state", "the state database", file=kept.file,
               by=kept.by.get(p), since=when)
        for p, when in kept.granted.items()
    ]  # fmt: skip
    explicit = [g["permission"] for g in (*config, *state)]
    # trusting a plugin's code (inline) puts the host:* permissions it asks for in force
    trusted = [
        _grant(p, "trust", f"the host's trust in its code: {trust}")
        for p in asked
        if trust is not None and p.startswith("host:") and not _any_covering(explicit, p)
    ]
    return [*config, *state, *trusted]


def _grant(
    permission: str,
    source: str,
    where: str,
    *,
    file: str | None = None,
    by: str | None = None,
    since: float | None = None,
) -> dict[str, Any]:
    return {
        "permission": permission,
        "source": source,
        "where": where,
        "file": file,
        "by": by,
        "since": since,
    }


def refusal_to_revoke(view: dict[str, Any], plugin_id: str, permission: str) -> PlugbayError | None:
    """Why ``plugbay revoke`` cannot take ``permission`` back: a grant of the host config
    file, or the host's trust in the plugin's code, gives it, and only the operator's
    edit of that file does; None when only the state grants it (or nothing does)."""
    sources = {g["source"]: g for g in view["grants"] if g["permission"] == permission}
    also = (
        "; it is also granted with 'plugbay grant': revoke it again once the file no longer "
        "grants it"
        if "state" in sources
        else ""
    )
    if "config" in sources:
        file = sources["config"]["file"] or "the host config"
        return PluginStateError(
            f"{permission} is granted by [policy.grants] in {file}, not by 'plugbay grant': "
            "revoking cannot take it back, and nothing was changed",
            plugin=plugin_id,
            hint=f'remove "{permission}" from "{plugin_id}" under [policy.grants] in {file}, '
            f"then restart the host{also}",
            details={"source": "config", "file": sources["config"]["file"]},
        )
    if "trust" in sources:
        return PluginStateError(
            f"{permission} is in force because the host trusts the plugin's code "
            f"({sources['trust']['where']}), not by a grant: revoking cannot take it back, "
            "and nothing was changed",
            plugin=plugin_id,
            hint="to take it back, stop trusting the plugin ([policy] inline, trust-core in "
            f"the host config), then restart the host{also}",
            details={"source": "trust"},
        )
    return None


async def change_grant(
    host: Host, plugin_id: str, permission: str, *, grant: bool, by: str | None = None
) -> dict[str, Any]:
    """Keep a grant or a revoke in the state, with its history entry saying who made it,
    and apply it at once: an active plugin whose permissions in force now differ from
    what the grants give it is reloaded (its worker restarts under the new policy). A
    revoke of what the host config file or the host's trust gives is refused (409)."""
    rec = host.manager.record(plugin_id)
    state = host.state
    if state is None:
        raise ConfigError(
            "this host has no state directory to keep grants in",
            plugin=plugin_id,
            hint="start the host with a state directory (--state), or grant in the "
            "host config's [policy.grants]",
        )
    if not grant:
        refusal = refusal_to_revoke(permissions_of(host.manager, rec), plugin_id, permission)
        if refusal is not None:
            raise refusal
    if grant:
        _refuse_to_grant(plugin_id, permission)
        state.grant(plugin_id, permission)
    elif not state.revoke(plugin_id, permission):
        # nothing to take back: the request conflicts with the grants as they are (409)
        raise PluginStateError(
            f"{permission} was not granted to '{plugin_id}'",
            plugin=plugin_id,
            hint=f"'plugbay info {plugin_id}' lists what is granted, and where from",
        )
    action = "grant" if grant else "revoke"
    state.add_event(plugin_id, action, reason=permission, details={"by": by} if by else None)
    view = permissions_of(host.manager, rec)
    restarted = False
    if str(rec.state) == "active" and _differs(view["in_force"] or (), view["next_start"]):
        rec = await host.reload(plugin_id)  # its worker restarts under the new policy
        restarted = True
    return {
        "plugin": plugin_id,
        "permission": permission,
        "granted": grant,
        "asked": _any_covered(permission, view["asked"]),
        "restarted": restarted,
        "state": str(rec.state),
        "permissions": host.info(plugin_id)["permissions"],
    }


def _refuse_to_grant(plugin_id: str, permission: str) -> None:
    """A grant that cannot be granted (``isolation.policy.grant_refusal``)."""
    refusal = grant_refusal(permission)
    if refusal is not None:
        raise ConfigError(refusal[0], plugin=plugin_id, hint=refusal[1])


def _differs(now: Iterable[str], then: Iterable[str]) -> bool:
    return set(now) != set(then)
