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
together, and :func:`check_given_twice` says which one a host would take; two copies
of one id and version (``plugbay validate base1 copy-of-base1``) are one plugin twice,
which a host refuses the second time it finds it, and it says that of the second; a
copy of a plugin of the plugins directory (``plugbay validate elsewhere/base1`` beside
``plugins/base1``) is refused too by a host given the directory and that path, which
finds the directory's copy first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import PluginManifest
from plugbay.pdk._analysis.base import Finding, ValidationResult, _Context, _host_version

if TYPE_CHECKING:
    from plugbay.model._manifest_problems import ManifestReading
    from plugbay.model.resolve import ResolutionPlan

__all__ = ["check_given_twice", "check_together", "with_given"]


def with_given(
    known: Sequence[PluginManifest], readings: Iterable[ManifestReading]
) -> list[PluginManifest]:
    """``known`` and each plugin of ``readings`` (the manifests given, each read once) it
    does not hold already (a plugin of the plugins directory is the same plugin): one set,
    so the plugins are resolved together once for them all. A manifest with a problem is
    left out (as is a wheel, checked unpacked): its own validation says what is wrong."""
    have = {k.root.resolve() for k in known if k.root is not None}
    given: list[PluginManifest] = []
    for reading in readings:
        manifest = reading.manifest if not reading.problems else None
        if manifest is None or manifest.root is None or manifest.root.resolve() in have:
            continue
        have.add(manifest.root.resolve())
        given.append(manifest)
    return [*known, *given]


def check_given_twice(results: Sequence[ValidationResult], known: Sequence[PluginManifest]) -> None:
    """An error for each plugin of ``results`` (validated in one run) given beside another
    version of its id: a host loads one version of each id, the one it resolves to
    beside ``known`` (the plugins the host knows and those given), else the newest; and
    for each copy of a plugin given after another of the same id and version, or of one
    of the plugins directory."""
    by_id = _versions_given(results, _directory_copies(results, known))
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


def _versions_given(
    results: Sequence[ValidationResult], in_directory: dict[tuple[str, str], PluginManifest]
) -> dict[str, dict[str, ValidationResult]]:
    """Each id given, and the first of ``results`` given of each version of it; an error
    on each copy of one (the same id and version from another place) of the plugins
    directory (``in_directory``), which a host finds first, else on each later copy given."""
    by_id: dict[str, dict[str, ValidationResult]] = {}
    for result in results:
        m = result.manifest
        if m is None:
            continue
        first = by_id.setdefault(m.id, {}).setdefault(str(m.version), result)
        found = in_directory.get((m.id, str(m.version)))
        if found is not None:
            if _another_copy(found, m):
                _directory_copy(result, found)
        elif first.manifest is not None and _another_copy(first.manifest, m):
            _given_copy(result, first)
    return by_id


def _directory_copies(
    results: Sequence[ValidationResult], known: Sequence[PluginManifest]
) -> dict[tuple[str, str], PluginManifest]:
    """The plugins of the plugins directory (not those given from elsewhere, nor the
    bundled ones, which a host adds only for an id it has not found) by id and version,
    the first found of each: what a host on the directory finds before a path given."""
    from plugbay.model.bundled import bundled_root

    bundled = bundled_root()
    # a plugin given from elsewhere is among ``known`` as the very manifest it was read as
    given = {id(r.manifest) for r in results if r.manifest is not None}
    found: dict[tuple[str, str], PluginManifest] = {}
    for k in known:
        root = k.root.resolve() if k.origin == "directory" and k.root is not None else None
        if root is None or id(k) in given:
            continue
        if bundled is None or not root.is_relative_to(bundled):
            found.setdefault((k.id, str(k.version)), k)
    return found


def _another_copy(first: PluginManifest, manifest: PluginManifest) -> bool:
    """``manifest`` is the plugin ``first`` is, from another place (a path given twice is
    one plugin)."""
    if first.root is None or manifest.root is None:
        return False
    return first.root.resolve() != manifest.root.resolve()


def _given_copy(result: ValidationResult, first: ValidationResult) -> None:
    """An error on ``result``, given after ``first``, the same id and version: a host that
    finds both registers the one it finds first and refuses the other as provided twice
    (:meth:`~plugbay.model.registry.PluginRegistry.register`)."""
    assert result.manifest is not None
    m = result.manifest
    file, line = _Context(m, result).in_manifest("id")
    message = (
        f"'{m.id}' {m.version} is given twice: by {first.path} and by {result.path}, the "
        "same id and version; a host that finds both loads the one it finds first and "
        f"refuses the other as provided twice: it would load {first.path}, given first, "
        "and refuse this one"
    )
    hint = (
        f"keep one copy of '{m.id}' {m.version}: remove this one, or give it another "
        "version; a host takes the copy it finds first (its plugins directories in "
        "order, each by name) and reports the other as provided twice"
    )
    result.findings.insert(0, Finding("error", "dependency", message, file, line, hint))


def _directory_copy(result: ValidationResult, found: PluginManifest) -> None:
    """An error on ``result``, the same id and version as ``found`` of the plugins
    directory: a host given the directory and this path finds the directory's first."""
    assert result.manifest is not None
    m = result.manifest
    file, line = _Context(m, result).in_manifest("id")
    message = (
        f"'{m.id}' {m.version} is given twice: by {found.root} (in the plugins directory) "
        f"and by {result.path}, the same id and version; a host that finds both loads the "
        "one it finds first and refuses the other as provided twice: given the plugins "
        f"directory and this path (--plugins DIR --plugins {result.path}), it would load "
        f"{found.root}, found first, and refuse this one"
    )
    hint = (
        f"keep one copy of '{m.id}' {m.version}: remove this one or {found.root}, or give "
        "one another version; a host takes the copy it finds first (its plugins "
        "directories in order, each by name) and reports the other as provided twice"
    )
    result.findings.insert(0, Finding("error", "dependency", message, file, line, hint))


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
