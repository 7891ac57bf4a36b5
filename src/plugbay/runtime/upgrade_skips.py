"""The installed versions an upgrade with no version named leaves out because a plugin
they require is not running (the swap would refuse them), and the note that says so.

Such a version is skipped when the upgrade chooses, as one its dependents would refuse
is: an older one that runs with what runs now is taken, and the plan's ``passed_over``
names each version left out, what it lacks, and what to load to reach it.
"""

from __future__ import annotations

from typing import Any, Final

from plugbay.model.manifest import PluginManifest
from plugbay.runtime.records import PluginState
from plugbay.runtime.swap_host import SwapHost

__all__ = ["SERVING_STATES", "not_serving", "passed_for_absent"]

#: a dependency in one of these states is there for the new version to call
SERVING_STATES: Final = frozenset(
    {PluginState.ACTIVE, PluginState.ON_DEMAND, PluginState.RESTARTING, PluginState.INITIALIZING}
)


def not_serving(m: SwapHost, new: PluginManifest) -> dict[str, str]:
    """Each plugin ``new`` requires that the host does not serve, and what it is:
    ``{"acme.base": "'acme.base' ^2, which is not loaded"}``."""
    states = {r.id: r.state for r in m.list_plugins()}
    lacks: dict[str, str] = {}
    for dep, rng in new.dependencies.items():
        state = states.get(dep)
        if state not in SERVING_STATES:
            lacks[dep] = f"'{dep}' {rng}, which is " + (
                "not loaded" if state is None else f"{state}"
            )
    return lacks


def passed_for_absent(
    plugin_id: str,
    passed: dict[str, Any] | None,
    absent: dict[str, dict[str, str]],
) -> dict[str, Any] | None:
    """``passed`` (the newest its dependents refuse, or ``None``) with the versions in
    ``absent`` (newest first: version → the plugins it lacks) named as left out too."""
    if not absent:
        return passed
    left = "; ".join(f"{v} requires {', '.join(lacks.values())}" for v, lacks in absent.items())
    loads = ", ".join(
        f"'plugbay load {dep}'" for dep in sorted({d for a in absent.values() for d in a})
    )
    newest = next(iter(absent))
    note = (
        f"{left}, so the swap would refuse {'it' if len(absent) == 1 else 'them'}: start "
        f"what {'it requires' if len(absent) == 1 else 'they require'} ({loads}), then "
        f"'plugbay upgrade {plugin_id}' moves to {newest}"
    )
    if passed is None:
        return {
            "version": newest,
            "dependents": {},
            "requires": absent,
            "hint": f"{'a newer version is' if len(absent) == 1 else 'newer versions are'} "
            f"installed too, but {note}",
        }
    return {**passed, "requires": absent, "hint": f"{passed['hint']}; and {note}"}
