"""What the read-only commands show when no host is running: the plugins on disk, each
"not running" (or "disabled", as the state keeps it), and the state opened read-only.

Nothing is started, created or written here, so ``list``, ``info``, ``history``, ``logs``,
``alerts`` and ``health`` work after a crash and on a read-only disk, and never pass off
a temporary host's plugins as the real host's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import PlugbayError, PluginNotFound, did_you_mean
from plugbay.cli._console import err
from plugbay.model._events import describe_events

if TYPE_CHECKING:
    from plugbay.state import StateStore

__all__ = [
    "NOT_RUNNING",
    "disk_info",
    "disk_permissions",
    "disk_rows",
    "missing_plugin",
    "say_no_host",
]

NOT_RUNNING: Final = "not running"


def say_no_host(state: Path) -> None:
    """One line on stderr, so ``--json`` output stays clean."""
    err.print(
        f"[yellow]no host is running on {state.resolve()}[/]: the plugins on disk are shown, "
        "none is running ('plugbay run' starts them)"
    )


@contextmanager
def _kept(state: Path) -> Iterator[StateStore | None]:
    """The state database opened read-only, once for a whole command (None without one)."""
    from plugbay.state import StateStore

    if not (state / "state.db").exists():
        yield None
        return
    with StateStore.open(state, read_only=True) as store:
        yield store


def _disabled(store: StateStore | None) -> dict[str, str | None]:
    """Disabled plugins (id → reason) as the state keeps them."""
    return {} if store is None else store.disabled()


def _next_start(store: StateStore | None) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """What the state says the next start serves: each plugin's version active at the
    last stop (the resolver keeps it), and the copies kept for rollback that no upgrade
    or rollback chose (a start does not register them)."""
    if store is None:
        return {}, set()
    from plugbay.runtime.store import KEPT

    held = store.held_versions()
    unchosen = {
        (pid, v)
        for pid, v, source in store.installed()
        if source.startswith(KEPT) and held.get(pid) != v
    }
    return store.active_versions(), unchosen


def _in(root: Path | None, directory: Path | None) -> bool:
    return root is not None and directory is not None and root.resolve().is_relative_to(directory)


def _newest(
    plugin_dirs: list[Path], state: Path | None = None, store: StateStore | None = None
) -> tuple[dict[str, Any], list[PlugbayError], dict[str, list[str]]]:
    """The newest manifest of each plugin id on disk, the problems, and every version;
    with ``state`` (and its ``store``), the version the next start serves instead
    (:func:`_next_start`)."""
    from plugbay.model.discover import discover

    found = discover([d for d in plugin_dirs if Path(d).is_dir()], entry_points=True)
    active, unchosen = _next_start(store) if state is not None else ({}, set())
    stored = (state / "store").resolve() if state is not None else None
    newest: dict[str, Any] = {}
    versions: dict[str, set[Any]] = {}
    for m in found.manifests:
        versions.setdefault(m.id, set()).add(m.version)
        if (m.id, str(m.version)) in unchosen and _in(m.root, stored):
            continue  # a copy kept for rollback: served only once chosen
        now = newest.get(m.id)
        if now is not None and active.get(m.id) == str(now.version):
            continue
        if now is None or m.version > now.version or active.get(m.id) == str(m.version):
            newest[m.id] = m
    known = {pid: [str(v) for v in sorted(vs)] for pid, vs in versions.items()}
    return newest, list(found.problems), known


def disk_rows(
    plugin_dirs: list[Path], state: Path
) -> tuple[list[dict[str, Any]], list[PlugbayError]]:
    """One row per plugin id on disk (its newest version), and the manifests that failed
    (a plugins directory that does not exist among them, as ``plugbay run`` says it)."""
    with _kept(state) as store:
        newest, problems, _ = _newest([*plugin_dirs, state / "store"], state, store)
        disabled = _disabled(store)
    problems[:0] = [_missing(d) for d in plugin_dirs if not Path(d).is_dir()]
    rows = []
    for pid, m in sorted(newest.items()):
        off = pid in disabled
        rows.append(
            {
                "id": pid, "version": str(m.version), "type": m.type,
                "state": "disabled" if off else NOT_RUNNING,
                "reason": disabled[pid] if off else _on_demand(m), "load_seconds": None,
                "source": "disk",
            }
        )  # fmt: skip
    return rows, problems


def _missing(directory: Path) -> PlugbayError:
    from plugbay.model.discover import discover_directory

    return discover_directory(Path(directory)).problems[0]  # its words, once


def _on_demand(manifest: Any) -> str | None:
    """What a running host would say of a plugin that starts on demand."""
    if not manifest.activation:
        return None
    return f"installed, starts on demand ({', '.join(manifest.activation)})"


def disk_info(
    plugin_id: str, plugin_dirs: list[Path], state: Path, config: Path | None = None
) -> dict[str, Any]:
    """``plugbay info`` from the manifest, the host config file ``config`` (its policy)
    and the kept state (no plugin code is imported, so its commands are not known)."""
    with _kept(state) as store:
        newest, _, known = _newest([*plugin_dirs, state / "store"], state, store)
        m = newest.get(plugin_id)
        if m is None:
            raise _not_on_disk(plugin_id, plugin_dirs, newest)
        disabled, kept, stored = _kept_for(plugin_id, store)
    off = plugin_id in disabled
    placed = _placed_on_disk(m, plugin_dirs, config)
    return {
        "id": plugin_id,
        "version": str(m.version),
        "state": "disabled" if off else NOT_RUNNING,
        "reason": disabled[plugin_id] if off else None,
        "isolation": placed["isolation"],
        "manifest": m.to_dict(),
        "versions_known": known[plugin_id],
        "versions_stored": [{"version": v, "source": s} for _, v, s in stored],
        "load_seconds": None,
        "dependencies": {k: str(v) for k, v in m.dependencies.items()},
        "dependents": sorted(
            pid for pid, other in newest.items() if plugin_id in other.dependencies
        ),
        "commands": [],
        "config": None,
        "permissions": permissions_on_disk(m, plugin_dirs, config, kept),
        "limits": {},
        "sandbox": placed["sandbox"],
        "python": _python(m, state),
        "usage": None,
        "events": describe_events(m.emits, m.listens, m.activation),
        "traceback": None,
        "notes": [f"{NOT_RUNNING}: its commands are listed by a running host ('plugbay run')"],
        "source": "disk",
    }


def _placed_on_disk(manifest: Any, plugin_dirs: list[Path], config: Path | None) -> dict[str, Any]:
    """Where a host started now with the config file ``config`` would run the plugin (on
    Ray, when its ``[ray]`` or the manifest sends it there), as ``info``'s ``isolation``
    and ``sandbox``; the manifest's ask and no sandbox when the policy cannot place it."""
    from plugbay.isolation.policy import IsolationPolicy

    try:
        placement = IsolationPolicy.from_file(config).place(manifest, plugin_dirs)
    except PlugbayError:
        return {"isolation": manifest.isolation, "sandbox": None}
    described = placement.describe()
    return {
        "isolation": placement.isolation,
        "sandbox": {
            "sandboxed": placement.sandboxed,
            "reason": placement.reason,
            "secrets": described["secrets"],
            "environment": described["environment"],
            "layers": [],
        },
    }


def _not_on_disk(plugin_id: str, plugin_dirs: list[Path], newest: dict[str, Any]) -> PluginNotFound:
    return PluginNotFound(
        f"no plugin '{plugin_id}' is on disk",
        plugin=plugin_id,
        where=", ".join(str(d) for d in plugin_dirs),
        hint=did_you_mean(plugin_id, newest) or "'plugbay list' shows the plugins on disk",
    )


def missing_plugin(plugin_id: str, plugin_dirs: list[Path], state: Path) -> PluginNotFound | None:
    """Why ``plugin_id`` names no plugin on disk (the plugins directories and the store),
    with the closest ids; None when it is there."""
    dirs = [*plugin_dirs, state / "store"]
    newest, _, _ = _newest(dirs)
    return None if plugin_id in newest else _not_on_disk(plugin_id, dirs, newest)


def check_switch(
    plugin_id: str, plugin_dirs: list[Path], state: Path, *, enable: bool
) -> list[str]:
    """An enable or a disable with no host running, checked as a host would check it: the
    plugin must be on disk (or kept disabled: it may be gone from disk since). A disable
    returns the plugins on disk that need it and are not disabled themselves: they will
    not start while it is disabled."""
    newest, _, _ = _newest([*plugin_dirs, state / "store"])
    with _kept(state) as store:
        disabled = _disabled(store)
    if plugin_id not in newest and plugin_id not in disabled:
        raise _not_on_disk(plugin_id, plugin_dirs, newest)
    if enable:
        return []
    return sorted(
        pid
        for pid, m in newest.items()
        if plugin_id in m.dependencies and pid not in disabled and pid != plugin_id
    )


def _kept_for(
    plugin_id: str, store: StateStore | None
) -> tuple[dict[str, str | None], Any, list[Any]]:
    """The disabled plugins, and the plugin's grants and denials (``Kept``) and stored
    versions, from the kept state."""
    from plugbay.runtime.permissions import Kept, kept_decisions

    if store is None:
        return {}, Kept(), []
    return store.disabled(), kept_decisions(store, plugin_id), store.installed(plugin_id)


def permissions_on_disk(
    manifest: Any, plugin_dirs: list[Path], config: Path | None, kept: Any
) -> dict[str, Any]:
    """The plugin's permissions as a host started now would place them: the config file's
    policy and the state's grants (what is in force in a running worker is not known here)."""
    from plugbay.isolation.policy import IsolationPolicy
    from plugbay.runtime.permissions import layered, unconfined_of

    policy = IsolationPolicy.from_file(config)
    return layered(
        manifest.id,
        manifest.permissions.asked(),
        policy,
        kept,
        trust=policy.trusted(manifest, plugin_dirs),
        in_force=None,
        unconfined=unconfined_of(None, policy, manifest, plugin_dirs),
    )


def disk_permissions(
    plugin_dirs: list[Path], state: Path, config: Path | None
) -> list[dict[str, Any]]:
    """Each plugin on disk (its newest version), by id, with its permissions as a host
    started now would place them: the shape of ``GET /api/v1/permissions``."""
    from plugbay.runtime.permissions import kept_decisions

    newest, _, _ = _newest([*plugin_dirs, state / "store"])
    with _kept(state) as store:
        disabled = _disabled(store)
        return [
            {
                "id": pid,
                "version": str(m.version),
                "state": "disabled" if pid in disabled else NOT_RUNNING,
                "permissions": permissions_on_disk(
                    m, plugin_dirs, config, kept_decisions(store, pid)
                ),
            }
            for pid, m in sorted(newest.items())
        ]


def _python(manifest: Any, state: Path) -> dict[str, Any] | None:
    """The plugin's Python requirements and the packages of its environment, read from
    the environments on disk (nothing is built)."""
    if not manifest.python_dependencies:
        return None
    from plugbay.runtime.environments import EnvironmentStore, python_info
    from plugbay.runtime.host import HOST_VERSION

    envs = EnvironmentStore(state / "envs", host_version=HOST_VERSION)
    return python_info(manifest, envs, inline=False)
