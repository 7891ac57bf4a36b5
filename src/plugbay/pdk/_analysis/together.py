"""The plugin beside every other plugin the host knows, as a host loads them: one version
of each id for them all.

Each plugin's ranges can be met on its own while two plugins still cannot load
together: ``acme.a`` needs ``acme.base ^1`` and ``acme.v`` needs ``acme.base ^2``, and
a host loads one ``acme.base``. The host then leaves out one of the two (the later id),
so ``plugbay validate`` of either says so, naming both, since the plugins directory it
is pointed at is all it can know of what the host will load beside it. Several plugins
validated in one run (``plugbay validate a b``) are plugins a host would load together,
wherever they are: :func:`with_given` adds them to what the host knows, so each is
checked beside the others (and one's dependency another provides is not missing); two
versions of one id given so (``plugbay validate given/base1 given/base2``) cannot load
together, and :func:`check_given_twice` says which one a host would take.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import PluginManifest
from plugbay.pdk._analysis.base import Finding, ValidationResult, _Context, _host_version

if TYPE_CHECKING:
    from plugbay.model.resolve import ResolutionPlan

__all__ = ["check_given_twice", "check_together", "with_given"]


def with_given(known: Sequence[PluginManifest], paths: Iterable[Path]) -> list[PluginManifest]:
    """``known`` and the plugin at each of ``paths`` it does not hold already (a plugin of
    the plugins directory is the same plugin): one set, so the plugins are resolved
    together once for them all. A path whose manifest does not read (or a wheel, checked
    unpacked) is left out: its own validation says what is wrong with it."""
    from plugbay.model._manifest_problems import read_manifest

    have = {k.root.resolve() for k in known if k.root is not None}
    given: list[PluginManifest] = []
    for path in paths:
        reading = read_manifest(path) if path.suffix != ".whl" else None
        manifest = reading.manifest if reading is not None and not reading.problems else None
        if manifest is None or manifest.root is None or manifest.root.resolve() in have:
            continue
        have.add(manifest.root.resolve())
        given.append(manifest)
    return [*known, *given]


def check_given_twice(results: Sequence[ValidationResult], known: Sequence[PluginManifest]) -> None:
    """An error for each plugin of ``results`` (validated in one run) given beside another
    version of its id: a host loads one version of each id, the one it resolves to
    beside ``known`` (the plugins the host knows and those given), else the newest."""
    by_id: dict[str, dict[str, ValidationResult]] = {}
    for result in results:
        if result.manifest is not None:
            by_id.setdefault(result.manifest.id, {}).setdefault(
                str(result.manifest.version), result
            )
    twice = {pid: given for pid, given in by_id.items() if len(given) > 1}
    if not twice:
        return  # the common case: no resolution more
    plan = _plan([*known, *(r.manifest for g in twice.values() for r in g.values() if r.manifest)])
    for pid, given in twice.items():
        chosen = plan.selected.get(pid)
        taken = str(chosen.version) if chosen is not None else None
        if taken not in given:
            taken = max(given, key=lambda v: given[v].manifest.version)  # type: ignore[union-attr]
        both = " and ".join(f"{v} ({r.path})" for v, r in given.items())
        for version, result in given.items():
            if version != taken:
                _left_out(result, f"'{pid}' {both} are given together", taken, given[taken])


def _left_out(result: ValidationResult, given: str, taken: str, chosen: ValidationResult) -> None:
    assert result.manifest is not None
    file, line = _Context(result.manifest, result).in_manifest("version")
    message = (
        f"beside the plugins given with it, it cannot be loaded: {given}, and a host loads "
        f"one version of each plugin: it would take {taken} ({chosen.path})"
    )
    hint = (
        f"validate one version of '{result.manifest.id}' at a time, or keep only the one the "
        "host should load; a host loads one version of each plugin for all that need it"
    )
    result.findings.insert(0, Finding("error", "dependency", message, file, line, hint))


def check_together(context: _Context, known: Sequence[PluginManifest]) -> None:
    """An error for each plugin that loads from ``known`` without ``context``'s plugin
    and would not load with it (the plugin itself, or one it would push out)."""
    m = context.m
    without = [k for k in known if (k.id, k.version) != (m.id, m.version)]
    # the plugin as the host knows it already (validating a plugin of the directory):
    # the same set for each plugin of it, resolved once
    same = [k for k in known if k.root == m.root and k.to_dict() == m.to_dict()]
    after = _failures(known if same and len(known) == len(without) + 1 else [*without, m])
    if not after:
        return  # all load together (the common case: one resolution, kept for the next)
    before = _failures(without)
    where = context.in_manifest("dependencies" if m.dependencies else "services")
    for pid, error in sorted(after.items()):
        if pid in before:
            continue  # it fails without this plugin too: its own problem, not this one's
        why = error.message.removeprefix("cannot be loaded: ")
        if pid == m.id:
            message = f"beside the plugins the host knows, it cannot be loaded: {why}"
        else:
            message = f"beside it, '{pid}', which the host knows, could no longer be loaded: {why}"
        context.add(
            "error",
            "dependency",
            message,
            where,
            (error.hint or "see 'plugbay deps'")
            + "; a host loads one version of each plugin for all that need it",
        )


#: the last resolution made, of which manifest objects (kept alive with it, so their
#: ids stay theirs): validating each plugin of one directory resolves the same set (the
#: directory, the plugin in it) once, not once per plugin; a manifest read again is
#: another object, so an edit is never answered from here
_last: list[tuple[tuple[int, ...], list[PluginManifest], dict[str, PlugbayError]]] = []


def _failures(manifests: Sequence[PluginManifest]) -> dict[str, PlugbayError]:
    """Each plugin of ``manifests`` a host on them all could not load, and why."""
    key = tuple(sorted(map(id, manifests)))
    if _last and _last[0][0] == key:
        return _last[0][2]
    failures = _resolved_failures(manifests)
    _last[:] = [(key, list(manifests), failures)]
    return failures


def _resolved_failures(manifests: Sequence[PluginManifest]) -> dict[str, PlugbayError]:
    return dict(_plan(manifests).failures)


def _plan(manifests: Sequence[PluginManifest]) -> ResolutionPlan:
    """What a host on ``manifests`` would load (a version it is given twice: the first)."""
    from plugbay.model.registry import PluginRegistry
    from plugbay.model.versions import Version

    registry = PluginRegistry(Version.parse(_host_version()))
    for manifest in manifests:
        try:
            registry.register(manifest)
        except PlugbayError:
            continue
    return registry.resolve_all()
