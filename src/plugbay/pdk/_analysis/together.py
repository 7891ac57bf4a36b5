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
finds the directory's copy first (of two copies in one directory, the one discovery's
walk of it finds first, each folder by name); and a copy of a plugin installed as a
package (an entry point) is the one a host takes, since it searches its directories
before the entry points, and it refuses the package's. A plugin that only provides a
version one side of another pair's conflict needs is not blamed for the conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
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


def check_given_twice(
    results: Sequence[ValidationResult],
    known: Sequence[PluginManifest],
    plugin_dirs: Sequence[Path] | None = None,
) -> None:
    """An error for each plugin of ``results`` (validated in one run) given beside another
    version of its id: a host loads one version of each id, the one it resolves to
    beside ``known`` (the plugins the host knows and those given), else the newest; and
    for each copy of a plugin given after another of the same id and version, of one of
    the plugins directories (``plugin_dirs``, in order, as the host is given them), or of
    a plugin installed as a package (an entry point), naming the copy a host would take."""
    by_id = _versions_given(results, _Copies(results, known, plugin_dirs))
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
    results: Sequence[ValidationResult], copies: _Copies
) -> dict[str, dict[str, ValidationResult]]:
    """Each id given, and the first of ``results`` given of each version of it; an error
    on each copy (the same id and version from another place) of one of the plugins
    directories, which a host finds first, else on each later copy given, else on the
    copy given of a plugin installed as a package, which a host finds last."""
    by_id: dict[str, dict[str, ValidationResult]] = {}
    for result in results:
        m = result.manifest
        if m is None:
            continue
        first = by_id.setdefault(m.id, {}).setdefault(str(m.version), result)
        found = copies.in_directory.get((m.id, str(m.version)))
        installed = copies.installed.get((m.id, str(m.version)))
        if _another_copy(found or first.manifest or m, m):  # not the copy a host takes
            if found is not None:
                _directory_copy(result, found, copies)
            else:
                _given_copy(result, first)
        elif installed is not None and _another_copy(installed, m):
            _installed_copy(result, installed, copies)
    return by_id


class _Copies:
    """Where a host finds the plugins known, in its order: the plugins directories (in
    the order given, each read by name), then the plugins installed as packages (entry
    points); the bundled plugins only for an id it has not found."""

    def __init__(
        self,
        results: Sequence[ValidationResult],
        known: Sequence[PluginManifest],
        plugin_dirs: Sequence[Path] | None,
    ) -> None:
        from plugbay.model.bundled import bundled_root

        bundled = bundled_root()
        #: the plugins directories as given (for messages), or None when not told
        self.dirs = None if plugin_dirs is None else [Path(d) for d in plugin_dirs]
        # a plugin given from elsewhere is among ``known`` as the very manifest it was read as
        given = {id(r.manifest) for r in results if r.manifest is not None}
        #: the first of each id and version found in the plugins directories, and each
        #: installed one, by id and version
        self.in_directory: dict[tuple[str, str], PluginManifest] = {}
        self.installed: dict[tuple[str, str], PluginManifest] = {}
        #: the roots of the plugins of the plugins directories
        self.found: set[Path] = set()
        for k in known:
            root = _root(k)
            if root is None or id(k) in given:
                continue
            if k.origin == "entry-point":
                self.installed.setdefault((k.id, str(k.version)), k)
            elif k.origin == "directory" and not _bundled(k, bundled):
                key = (k.id, str(k.version))
                first = self.in_directory.get(key)
                self.in_directory[key] = k if first is None else self._found_first(first, k)
                self.found.add(root)

    def _found_first(self, first: PluginManifest, other: PluginManifest) -> PluginManifest:
        """Of two copies in the plugins directories, the one a host finds first: the one of
        the earlier directory, else the first discovery's own walk of it finds (each folder
        by name: ``a/x`` before ``a-b/x``, though ``"a-b/x" < "a/x"``); not told the
        directories, ``first`` (discovery's order, as :func:`known_plugins` gives it)."""
        from plugbay.model.discover import manifest_files

        at, other_at = self._directory_index(first), self._directory_index(other)
        if self.dirs is None or at is None or other_at is None:
            return first
        if at != other_at:
            return first if at < other_at else other
        files = {_root(first), _root(other)}
        for file in manifest_files(self.dirs[at]):
            if (root := Path(file).parent.resolve()) in files:
                return first if root == _root(first) else other
        return first

    def _directory_index(self, manifest: PluginManifest) -> int | None:
        root = _root(manifest)
        for i, d in enumerate(self.dirs or ()):
            if root is not None and root.is_relative_to(d.resolve()):
                return i
        return None

    def directory_of(self, manifest: PluginManifest) -> str | None:
        """The plugins directory ``manifest`` was found in, as given ("" when the
        directories were not told), or None for a plugin from elsewhere."""
        root = _root(manifest)
        if root is None or root not in self.found:
            return None
        at = self._directory_index(manifest)
        return "" if self.dirs is None or at is None else str(self.dirs[at])

    def given(self, *paths: Path) -> str | None:
        """The options of a host given the plugins directories and ``paths`` (None when
        the directories were not told: no option is made up for them)."""
        if self.dirs is None:
            return None
        return " ".join(f"--plugins {d}" for d in [*self.dirs, *paths])

    def directories(self) -> str:
        return "directories" if self.dirs is not None and len(self.dirs) > 1 else "directory"


def _bundled(manifest: PluginManifest, bundled: Path | None) -> bool:
    """Whether ``manifest`` is one of plugbay's bundled plugins: by the path it was read
    from, not resolved (the bundled directory may be a link to a plugins directory, as
    in plugbay's own checkout, where ``plugins/`` is what ``bundled/`` links to)."""
    where = manifest.root or (manifest.path.parent if manifest.path is not None else None)
    return bundled is not None and where is not None and where.absolute().is_relative_to(bundled)


def _root(manifest: PluginManifest) -> Path | None:
    """The directory ``manifest`` is read from, resolved: an installed plugin's is its
    manifest file's directory."""
    root = manifest.root or (manifest.path.parent if manifest.path is not None else None)
    return root.resolve() if root is not None else None


def _another_copy(first: PluginManifest, manifest: PluginManifest) -> bool:
    """``manifest`` is the plugin ``first`` is, from another place (a path given twice is
    one plugin)."""
    first_root, root = _root(first), _root(manifest)
    return first_root is not None and root is not None and first_root != root


def _given_copy(result: ValidationResult, first: ValidationResult) -> None:
    """An error on ``result``, given after ``first``, the same id and version: a host that
    finds both registers the one it finds first and refuses the other as provided twice
    (:meth:`~plugbay.model.registry.PluginRegistry.register`)."""
    _copy_error(
        result,
        f"by {first.path} and by {result.path}",
        f"it would load {first.path}, given first, and refuse this one",
        "remove this one, or give it another version; a host takes the copy it finds first "
        "(its plugins directories in order, each by name) and reports the other as provided "
        "twice",
    )


def _directory_copy(result: ValidationResult, found: PluginManifest, copies: _Copies) -> None:
    """An error on ``result``, the same id and version as ``found`` of a plugins
    directory, which a host finds first: in the same directory, the one its walk of the
    directory finds first; in an earlier directory; or given the directories and this
    path. The directories named are those the host is given, when told."""
    assert result.manifest is not None
    there, here = copies.directory_of(found), copies.directory_of(result.manifest)
    if here is not None and here == there:
        both = f"by {found.root} and by {result.path}, both in {_the_directory(there)}"
        on = f"on the plugins directory {there}, " if there else ""
        taken = f"{on}it would load {found.root}, found first ({_WALK})"
    elif here is not None:
        both = (
            f"by {found.root} (in the plugins directory {there}) and by {result.path} (in {here})"
        )
        taken = (
            f"given its plugins directories in order ({copies.given()}), it would load "
            f"{found.root}, in {there}, found first"
        )
    else:
        both = f"by {found.root} (in {_the_directory(there)}) and by {result.path}"
        taken = (
            f"given the plugins {copies.directories()} and this path"
            f"{_options(copies.given(result.path))}, it would load {found.root}, found first"
        )
    _copy_error(
        result,
        both,
        f"{taken}, and refuse this one",
        f"remove this one or {found.root}, or give one another version; a host takes the "
        "copy it finds first (its plugins directories in order, each by name) and reports "
        "the other as provided twice",
    )


def _installed_copy(result: ValidationResult, installed: PluginManifest, copies: _Copies) -> None:
    """An error on ``result``, the same id and version as ``installed`` (a package of the
    environment with a ``plugbay.plugins`` entry point): a host searches its plugins
    directories before the entry points, so it takes this one and refuses the package's."""
    assert result.manifest is not None
    package = installed.distribution or installed.location
    here = copies.directory_of(result.manifest)
    if here is not None:
        how = f"on the plugins directory {here}" if here else "on its plugins directories"
    else:
        how = (
            f"given the plugins {copies.directories()} and this path"
            f"{_options(copies.given(result.path))}"
        )
    _copy_error(
        result,
        f"by {result.path} and by the installed package {package} ({_root(installed)})",
        f"{how}, it would load this one, found first (its plugins directories before the "
        f"installed packages), and refuse the one of package {package}",
        f"uninstall {package} (pip uninstall {package}), or give one another version; a host "
        "takes the copy it finds first (its plugins directories in order, each by name, then "
        "the installed packages) and reports the other as provided twice",
    )


#: how a host walks a plugins directory (:mod:`plugbay.model.discover`)
_WALK = "it reads each folder of the directory in order of name"


def _the_directory(there: str | None) -> str:
    """The plugins directory named, or (not told) the host's."""
    return f"the plugins directory {there}" if there else "its plugins directories"


def _options(given: str | None) -> str:
    return f" ({given})" if given else ""


def _copy_error(result: ValidationResult, both: str, taken: str, hint: str) -> None:
    """The error, at its id, on ``result``, a copy of a plugin a host finds elsewhere too
    (the same id and version): ``both`` says the two places, ``taken`` the one a host
    loads and the one it refuses, ``hint`` what to do about it."""
    assert result.manifest is not None
    m = result.manifest
    file, line = _Context(m, result).in_manifest("id")
    message = (
        f"'{m.id}' {m.version} is given twice: {both}, the same id and version; a host that "
        f"finds both loads the one it finds first and refuses the other as provided twice: "
        f"{taken}"
    )
    hint = f"keep one copy of '{m.id}' {m.version}: {hint}"
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
        if pid in before or not _among_culprits(m.id, pid, error):
            continue  # it fails without this plugin too, or for others' ranges: not this one's
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


def _among_culprits(plugin_id: str, pid: str, error: PlugbayError) -> bool:
    """Whether ``plugin_id`` is to blame for ``pid``'s failure: it is ``pid``, or one of
    the ranges that cross is its own. A plugin that only provides a version (acme.base
    1.0.0 beside acme.a, needing ^1, and acme.v, needing ^2) lets one side of another
    pair's conflict be met: the pair is told of it, not the provider."""
    requirements = error.details.get("requirements")
    if pid == plugin_id or not isinstance(requirements, list):
        return True
    return any(isinstance(r, dict) and r.get("by") == plugin_id for r in requirements)


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
