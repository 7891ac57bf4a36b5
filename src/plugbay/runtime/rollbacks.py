"""Which versions a rollback moves.

A rollback returns a plugin to an earlier version kept in the store. When an active
dependent would not accept that version (``upgrade --with-dependents`` moved both
forward together, say), the rollback is refused naming each one, or, with its
dependents, each of them goes back too: to the version it had before the one serving,
which must accept the plugin's earlier version, and so on down to their own
dependents. Nothing moves until the whole plan holds.
"""

from __future__ import annotations

from collections.abc import Callable

from plugbay.api.errors import DependentsError, PlugbayError, ResolutionError
from plugbay.model.manifest import PluginManifest
from plugbay.runtime.swap_host import SwapHost
from plugbay.runtime.upgrades import UpgradePlan, breaks_dependents, broken_dependents, refusal

__all__ = ["plan_rollback"]


def plan_rollback(
    m: SwapHost,
    previous_version: Callable[[str], str],
    plugin_id: str,
    target: PluginManifest,
    *,
    with_dependents: bool,
) -> UpgradePlan:
    """``plugin_id`` back to ``target`` and, ``with_dependents``, each active dependent
    that would not accept it back to its ``previous_version``; in start order. Raises,
    naming each dependent and its range, when one would break and ``with_dependents`` is
    off, or when its earlier version would not accept the plan either."""
    current = m.record(plugin_id).version or "?"
    changes: dict[str, tuple[str, PluginManifest]] = {plugin_id: (current, target)}
    broken = broken_dependents(m, plugin_id, target, ())
    if broken and not with_dependents:
        raise breaks_dependents(
            plugin_id, target, broken,
            f"'plugbay rollback {plugin_id} --to {target.version} --with-dependents' rolls "
            "them back too, each to the version it had before",
        )  # fmt: skip
    waiting = list(broken)
    while waiting:
        dep = waiting.pop(0)
        if dep in changes:
            continue
        earlier = _earlier(m, previous_version, plugin_id, dep, broken.get(dep))
        for pid, (_, planned) in changes.items():
            reason = refusal(m, earlier, m.record(dep).needs, pid, planned)
            if reason is not None:
                raise ResolutionError(
                    f"cannot roll {plugin_id} back to {target.version} with its dependents: "
                    f"{dep} would go back to {earlier.version}, and {reason}",
                    plugin=plugin_id,
                    where=earlier.location,
                    hint=f"roll {dep} back to a version that accepts it first "
                    f"('plugbay rollback {dep} --to VERSION'), or keep {plugin_id} where it is",
                    details={"dependents": broken},
                )
        changes[dep] = (m.record(dep).version or "?", earlier)
        further = broken_dependents(m, dep, earlier, changes)
        broken.update(further)
        waiting.extend(further)
    order = [plugin_id, *(pid for pid in m.start_order() if pid in changes and pid != plugin_id)]
    return UpgradePlan({pid: changes[pid] for pid in order})


def _earlier(
    m: SwapHost,
    previous_version: Callable[[str], str],
    plugin_id: str,
    dep: str,
    why: str | None,
) -> PluginManifest:
    """The version ``dep`` had before the one serving, from the store."""
    assert m.store is not None
    try:
        return m.store.manifest(dep, previous_version(dep))
    except PlugbayError as exc:
        raise DependentsError(
            f"cannot roll {plugin_id} back with its dependents: "
            + (f"{why}, and " if why else "")
            + f"{dep} {exc.message}",
            plugin=plugin_id,
            where=exc.where,
            hint=exc.hint,
        ) from None
