"""Which versions a swap may move to, and which an upgrade moves.

Before any code of a new version runs, a swap is checked here: the id must stay,
the version must not go backwards (unless rolling back), the host must be in its
range, every plugin it requires must be running, and every active dependent's
range and required service range must accept it. An upgrade plans its moves here:
the newest installed version this host accepts (or the one asked for), and, with
its dependents, a consistent set of installed versions found by the resolver.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plugbay.api.errors import (
    DependentsError,
    PlugbayError,
    PluginStateError,
    ResolutionError,
    VersionError,
)
from plugbay.model.manifest import PluginManifest
from plugbay.model.versions import Version
from plugbay.runtime.records import PluginState
from plugbay.runtime.swap_host import SwapHost
from plugbay.runtime.upgrade_skips import SERVING_STATES as _SERVING_STATES
from plugbay.runtime.upgrade_skips import not_serving, passed_for_absent

if TYPE_CHECKING:
    from plugbay.model.resolve import ResolutionPlan
    from plugbay.runtime.records import PluginRecord

__all__ = [
    "UpgradePlan",
    "breaks_dependents",
    "broken_dependents",
    "check_dependents",
    "check_target",
    "not_installed",
    "plan_upgrade",
    "refusal",
]


@dataclass(frozen=True, slots=True)
class UpgradePlan:
    """What ``upgrade`` would change: plugin id → (from version, to manifest), in order."""

    changes: dict[str, tuple[str, PluginManifest]]
    #: with no version named: the newer version left out because active dependents would
    #: refuse it (``{"version", "dependents": {id: why}, "hint"}``), else ``None``
    passed_over: dict[str, Any] | None = None
    #: once moved: each plugin whose commands changed for a caller, with each change
    #: (:func:`plugbay.runtime.command_changes.command_changes`); a plan not yet moved has none
    command_changes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def order(self) -> list[str]:
        return list(self.changes)

    def to_dict(self) -> dict[str, dict[str, str]]:
        """``{id: {"from": version, "to": version}}`` in order (for the CLI and the API)."""
        return {
            pid: {"from": old, "to": str(new.version)} for pid, (old, new) in self.changes.items()
        }


# ------------------------------------------------------------------ a swap's checks


def check_target(
    m: SwapHost,
    rec: PluginRecord,
    old: PluginManifest,
    new: PluginManifest,
    *,
    allow_downgrade: bool,
) -> None:
    """Refuse a changed id, a version going backwards, and a host range excluding this host."""
    where = new.location
    if new.id != rec.id:
        raise PlugbayError(
            f"the manifest now says id '{new.id}'",
            where=where,
            hint="a plugin's id cannot change; install it as a new plugin",
        )
    if new.version < old.version and not allow_downgrade:
        raise PlugbayError(
            f"the version went backwards, from {old.version} to {new.version}",
            where=where,
            hint=f"raise the version, or go back on purpose with 'plugbay rollback {rec.id}'",
        )
    host = Version.parse(m.settings.host_version)
    if not new.host.contains(host, include_prerelease=True):
        raise PlugbayError(
            f"{new.version} needs host {new.host}, and this host is {host}",
            where=where,
            hint="use a version made for this host, or upgrade plugbay",
        )
    _check_dependencies_present(m, rec, old, new)


def _check_dependencies_present(
    m: SwapHost, rec: PluginRecord, old: PluginManifest, new: PluginManifest
) -> None:
    """Refuse a version that requires a plugin the host is not running: it would serve
    without it (a loaded one out of range is refused by the host's ``needs_of``)."""
    states = {r.id: r.state for r in m.list_plugins()}
    for dep, rng in new.dependencies.items():
        state = states.get(dep)
        if state not in _SERVING_STATES:
            raise PluginStateError(
                f"{new.version} requires '{dep}' {rng}, which is "
                + ("not loaded" if state is None else f"{state}"),
                plugin=rec.id,
                where=new.location,
                hint=(
                    f"install '{dep}' {rng} into a plugin directory and load it "
                    if state is None
                    else f"start '{dep}' "
                    + ("(enable it first) " if state == PluginState.DISABLED else "")
                )
                + f"('plugbay load {dep}'), then try again; {old.version} keeps serving",
            )


def check_dependents(
    m: SwapHost, plugin_id: str, new: PluginManifest, together: Collection[str]
) -> None:
    """Refuse a version that an active dependent's range would not accept, naming
    each dependent and its range (plugin ranges and required service ranges)."""
    broken = broken_dependents(m, plugin_id, new, together)
    if broken:
        raise breaks_dependents(
            plugin_id, new, broken,
            f"'plugbay upgrade {plugin_id} {new.version} --with-dependents' moves them too "
            "when versions of them accept it; otherwise keep a compatible version",
        )  # fmt: skip


def breaks_dependents(
    plugin_id: str, new: PluginManifest, broken: dict[str, str], hint: str
) -> DependentsError:
    """The refusal of ``new``, which the dependents in ``broken`` (id: why) would not
    accept; ``hint`` says what moves them too (an upgrade's, a rollback's)."""
    return DependentsError(
        f"{new.version} would break its dependents: " + "; ".join(broken.values()),
        plugin=plugin_id,
        where=new.location,
        hint=hint,
        details={"dependents": broken},
    )


def broken_dependents(
    m: SwapHost, plugin_id: str, new: PluginManifest, together: Collection[str]
) -> dict[str, str]:
    """Each active dependent (not in ``together``) that would not accept ``new``, and why."""
    broken: dict[str, str] = {}
    for dep in m.list_plugins():
        if dep.id == plugin_id or dep.id in together or dep.state != "active":
            continue
        reason = _what_breaks(m, dep, plugin_id, new)
        if reason is not None:
            broken[dep.id] = reason
    return broken


def _what_breaks(m: SwapHost, dep: PluginRecord, plugin_id: str, new: PluginManifest) -> str | None:
    """Why the active plugin ``dep`` would not accept ``new`` (the last reason found), or ``None``."""
    if dep.manifest is None:
        return None
    return refusal(m, dep.manifest, dep.needs, plugin_id, new)


def refusal(
    m: SwapHost,
    manifest: PluginManifest,
    needs: Collection[str],
    plugin_id: str,
    new: PluginManifest,
) -> str | None:
    """Why ``manifest`` (a version of a plugin that needs ``needs``) would not accept
    ``new`` as ``plugin_id`` (the last reason found), or ``None``."""
    who = f"'{manifest.id}' {manifest.version}"
    reason = None
    rng = manifest.dependencies.get(plugin_id)
    if rng is None and plugin_id in needs:
        rng = manifest.optional_dependencies.get(plugin_id)
    if rng is not None and new.version not in rng:
        reason = f"{who} requires '{plugin_id}' {rng}"
    for name, wanted in manifest.requires.items():
        if m.services.provider_of(name) != plugin_id:
            continue
        provided = new.provides.get(name)
        if provided is None:
            reason = (
                f"{who} requires service '{name}' {wanted}, which {new.version} no longer provides"
            )
        elif provided not in wanted:
            reason = (
                f"{who} requires service '{name}' {wanted}, and {new.version} provides {provided}"
            )
    return reason


# ------------------------------------------------------------------ an upgrade's plan


def plan_upgrade(
    m: SwapHost, plugin_id: str, version: str | None, *, with_dependents: bool
) -> UpgradePlan:
    """Which versions move if ``plugin_id`` moves to ``version`` (default: the newest
    registered that this host accepts and, without ``with_dependents``, that its active
    dependents accept). Raises, naming each dependent and its range, when a dependent
    would break and ``with_dependents`` is off or no consistent set of versions exists."""
    rec = m.record(plugin_id)
    current = rec.manifest
    if rec.state != "active" or current is None:
        raise m.not_active(rec)
    if version is None:
        if with_dependents:
            return _newest_with_dependents(m, rec, current)
        return _compatible_upgrade(m, plugin_id, current)
    wanted = _wanted_version(m, plugin_id, current, version)
    return _to_version(m, rec, current, wanted, with_dependents=with_dependents)


def _to_version(
    m: SwapHost,
    rec: PluginRecord,
    current: PluginManifest,
    wanted: Version,
    *,
    with_dependents: bool,
) -> UpgradePlan:
    """The moves that take ``rec`` from ``current`` to the installed version ``wanted``."""
    target = m.registry.get(rec.id, wanted)
    check_target(m, rec, current, target, allow_downgrade=False)
    try:
        check_dependents(m, rec.id, target, ())
        return UpgradePlan({rec.id: (str(current.version), target)})
    except DependentsError as exc:
        if not with_dependents:
            raise
        return _with_dependents(m, rec.id, wanted, target, exc)


def _newest_with_dependents(m: SwapHost, rec: PluginRecord, current: PluginManifest) -> UpgradePlan:
    """``--with-dependents`` with no version named: the newest later release that the
    plugin and its dependents can move to together, noting a newer one no set of installed
    versions of them accepts as passed over (as a plain upgrade notes its own); refused
    with the newest's reasons when no later release has such a set."""
    later = _later_releases(m, rec.id, current, m.registry.versions(rec.id))
    refused: ResolutionError | None = None
    for version in later:
        try:
            plan = _to_version(m, rec, current, version, with_dependents=True)
        except ResolutionError as exc:
            refused = refused or exc
            continue
        if refused is None:
            return plan
        dependents = refused.details.get("dependents", {})
        passed = {
            "version": str(later[0]),
            "dependents": dependents,
            "hint": f"{later[0]} is installed too, but {refused.message}: install versions of "
            f"those dependents that accept it, then 'plugbay upgrade {rec.id} {later[0]} "
            "--with-dependents'",
        }
        return UpgradePlan(plan.changes, passed)
    assert refused is not None  # _later_releases refuses an empty list
    raise refused


def _wanted_version(
    m: SwapHost, plugin_id: str, current: PluginManifest, version: str | None
) -> Version:
    """The version an upgrade moves to: ``version`` when it is installed and newer than
    the one serving, else the newest installed that this host accepts, when it is newer."""
    known = m.registry.versions(plugin_id)
    if version is not None:
        wanted = _asked_version(plugin_id, version, known)
        if wanted not in known:
            raise not_installed(plugin_id, str(wanted), known)
        if wanted < current.version:
            raise PluginStateError(
                f"{wanted} is older than {current.version}, which serves now",
                plugin=plugin_id,
                hint=f"'plugbay rollback {plugin_id}' goes back on purpose",
            )
        if wanted == current.version:
            newer = [str(v) for v in known if v > current.version]
            raise PluginStateError(
                f"{wanted} serves already: there is nothing to upgrade to",
                plugin=plugin_id,
                hint=f"newer versions installed: {', '.join(newer)}"
                if newer
                else f"'plugbay reload {plugin_id}' swaps it for what its files say now; "
                "'plugbay install PATH' adds a newer version",
            )
        return wanted
    return _newest_release(m, plugin_id, current, known)


def _newest_release(
    m: SwapHost, plugin_id: str, current: PluginManifest, known: Collection[Version]
) -> Version:
    """The newest installed version newer than ``current`` this host accepts: a release,
    or a pre-release when one serves now; refused, naming what there is, when none."""
    return _later_releases(m, plugin_id, current, known)[0]


def _later_releases(
    m: SwapHost, plugin_id: str, current: PluginManifest, known: Collection[Version]
) -> list[Version]:
    """The installed versions newer than ``current`` this host accepts, newest first:
    releases, or pre-releases too when one serves now; refused, naming what there is,
    when none."""
    host = Version.parse(m.settings.host_version)
    fitting = [
        v
        for v in known
        if m.registry.get(plugin_id, v).host.contains(host, include_prerelease=True)
    ]
    later = [v for v in fitting if v > current.version]
    # a pre-release is taken when named, or when one serves now (its own track): as pip
    # and npm do, a plain upgrade does not move a release to an untested version
    chosen = [v for v in later if not v.is_prerelease or current.version.is_prerelease]
    if not chosen:
        listed = (
            f"pre-releases installed: {_listed(later)}" if later else f"known: {_listed(known)}"
        )
        raise PluginStateError(
            f"{current.version} is the newest version installed for this host ({listed})",
            plugin=plugin_id,
            hint=f"name a pre-release to move to it: 'plugbay upgrade {plugin_id} {later[0]}'"
            if later
            else "'plugbay install PATH' adds a newer version",
        )
    return chosen


def _compatible_upgrade(m: SwapHost, plugin_id: str, current: PluginManifest) -> UpgradePlan:
    """An upgrade with no version named: the newest later release its active dependents
    accept, noting the newer one passed over (which ``--with-dependents`` or naming it
    reaches); refused, naming the newest and its dependents, when they accept none."""
    later = _later_releases(m, plugin_id, current, m.registry.versions(plugin_id))
    newest = m.registry.get(plugin_id, later[0])
    refused = broken_dependents(m, plugin_id, newest, ())
    reach = (
        f"'plugbay upgrade {plugin_id} --with-dependents' (or 'plugbay upgrade {plugin_id} "
        f"{newest.version} --with-dependents') moves to {newest.version} and its dependents "
        "to versions that accept it, when versions of them do"
    )
    absent: dict[str, dict[str, str]] = {}  # a version left out: the plugins it lacks
    for version in later:
        target = m.registry.get(plugin_id, version)
        if refused if target is newest else broken_dependents(m, plugin_id, target, ()):
            continue
        lacks = not_serving(m, target)
        if lacks:  # the swap would refuse it: an older one may run with what runs now
            absent[str(version)] = lacks
            continue
        check_target(m, m.record(plugin_id), current, target, allow_downgrade=False)
        passed = None
        if refused:
            passed = {
                "version": str(newest.version),
                "dependents": refused,
                "hint": f"{newest.version} is installed too, but its dependents would refuse "
                f"it ({'; '.join(refused.values())}): {reach}",
            }
        return UpgradePlan(
            {plugin_id: (str(current.version), target)},
            passed_for_absent(plugin_id, passed, absent),
        )
    if str(newest.version) in absent:  # none fits: the newest's own refusal says why
        check_target(m, m.record(plugin_id), current, newest, allow_downgrade=False)
    raise breaks_dependents(
        plugin_id, newest, refused,
        f"no newer version its dependents accept is installed; {reach}; otherwise "
        f"install a version they accept ('plugbay install PATH')",
    )  # fmt: skip


def _asked_version(plugin_id: str, version: str, known: Collection[Version]) -> Version:
    """``version`` read as SemVer; one that is not says so with the versions installed."""
    try:
        return Version.parse(version)
    except PlugbayError as exc:
        raise VersionError(
            f"'{version}' is not a version to upgrade to: {exc.message}",
            plugin=plugin_id,
            hint=f"name an installed version ({_listed(known)}), as MAJOR.MINOR.PATCH",
        ) from None


def not_installed(plugin_id: str, version: str, known: Collection[Version]) -> PluginStateError:
    """The error for a version of ``plugin_id`` that is not installed: the versions that
    are, and how to install this one (from its files, or from an index)."""
    return PluginStateError(
        f"version {version} is not installed (installed: {_listed(known)})",
        plugin=plugin_id,
        hint=f"install it first, from its directory or wheel ('plugbay install PATH') or "
        f"from an index ('plugbay install {plugin_id}@{version} --index URL'), then "
        f"'plugbay upgrade {plugin_id} {version}'",
        details={"installed": [str(v) for v in known]},
    )


def _listed(known: Collection[Version]) -> str:
    return ", ".join(map(str, known)) or "none"


def _with_dependents(
    m: SwapHost, plugin_id: str, wanted: Version, target: PluginManifest, broken: DependentsError
) -> UpgradePlan:
    """Versions of the active plugins that accept ``target``, keeping every other active
    plugin where it is when possible; raises naming the dependents when none exist."""
    from plugbay.model.resolve import resolve

    active = {r.id: r for r in m.list_plugins() if r.state == "active" and r.manifest}
    candidates = [
        manifest
        for manifest in m.registry.manifests()
        if manifest.id in active and (manifest.id != plugin_id or manifest.version == wanted)
    ]
    pins = {pid: r.manifest.version for pid, r in active.items() if r.manifest}
    pins[plugin_id] = wanted
    host = Version.parse(m.settings.host_version)
    plan = resolve(candidates, host_version=host, requested=list(active), pinned=pins)
    if plan.failures or plan.selected.get(plugin_id) is not target:
        causes = "; ".join(str(e) for e in plan.failures.values())
        raise ResolutionError(
            f"no consistent set of installed versions accepts {plugin_id} {wanted}: "
            + "; ".join(broken.details.get("dependents", {}).values())
            + (f" ({causes})" if causes else ""),
            plugin=plugin_id,
            hint="install versions of those dependents that accept it, then try again",
            details={"dependents": broken.details.get("dependents", {})},
        ) from None
    return UpgradePlan(_moves(plan, active))


def _moves(
    plan: ResolutionPlan, active: dict[str, PluginRecord]
) -> dict[str, tuple[str, PluginManifest]]:
    """Each active plugin whose resolved version differs from the serving one, in order."""
    changes: dict[str, tuple[str, PluginManifest]] = {}
    for pid in plan.order:
        chosen = plan.selected[pid]
        now = active[pid].manifest
        if now is not None and chosen.version != now.version:
            changes[pid] = (str(now.version), chosen)
    return changes
