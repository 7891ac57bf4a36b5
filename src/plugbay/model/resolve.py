"""Choosing one version of every plugin, and the order to start them in.

resolvelib searches (with backtracking) for one version per plugin that
satisfies every dependency range, every required service and the host version,
preferring the newest (or the version pinned from the last run). Services are
part of the same search: a requirement on service ``formatting`` ``^1`` is a
requirement on the virtual identifier ``service:formatting`` whose candidates
are the plugins that provide it. graphlib then orders the choice and finds
cycles.

A plugin that cannot be satisfied is left out with an explanation a user can
act on; everything else still resolves.
"""

from __future__ import annotations

import graphlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from resolvelib import AbstractProvider, BaseReporter
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep
from resolvelib.resolvers.resolution import Resolution

from plugbay.api.errors import (
    DependencyCycleError,
    MissingDependencyError,
    PlugbayError,
    ResolutionError,
)
from plugbay.model._manifest_lines import dependency_at, dependency_heading, first_dependency_at
from plugbay.model.manifest import PluginManifest
from plugbay.model.versions import EMPTY_RANGE_FIX, Range, Version

__all__ = ["ResolutionPlan", "resolve"]

_SERVICE: Final = "service:"


@dataclass(frozen=True, slots=True)
class ResolutionPlan:
    """The outcome: what to load, in which order, and what cannot load and why."""

    selected: dict[str, PluginManifest]
    order: list[str]
    edges: dict[str, frozenset[str]]
    failures: dict[str, PlugbayError] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def dependents(self, plugin_id: str, *, transitive: bool = False) -> list[str]:
        """Selected ids that need ``plugin_id`` (directly, or at any depth), in load order."""
        found: set[str] = set()
        frontier = {plugin_id}
        while frontier:
            step = {p for p, needs in self.edges.items() if needs & frontier} - found
            found |= step
            frontier = step if transitive else set()
        return [p for p in self.order if p in found]


# --------------------------------------------------------------------------- the search


class _Req(NamedTuple):
    """A requirement on a plugin or a service (tuples: a resolve makes thousands)."""

    identifier: str
    range: Range | None  # None: any version
    exact: Version | None = None

    def allows(self, version: Version) -> bool:
        if self.exact is not None:
            return version == self.exact
        return self.range is None or self.range.contains(version)

    def describe(self) -> str:
        if self.exact is not None:
            return f"={self.exact}"
        return str(self.range) if self.range is not None else "*"


class _Cand(NamedTuple):
    identifier: str
    version: Version  # the plugin's version, or the service's
    manifest: PluginManifest


class _Index:
    """Every usable version of every plugin and service, newest first."""

    def __init__(
        self,
        candidates: Iterable[PluginManifest],
        host_version: Version,
        disabled: Collection[str],
    ) -> None:
        self.host_version = host_version
        self.disabled = set(disabled)
        self.all: dict[str, list[PluginManifest]] = {}
        self.usable: dict[str, list[PluginManifest]] = {}
        self.services: dict[str, list[tuple[Version, PluginManifest]]] = {}
        for m in candidates:
            self.all.setdefault(m.id, []).append(m)
        # most manifests share a few host ranges (Range.parse returns one object a text)
        fits: dict[Range, bool] = {}
        for pid, found in self.all.items():
            found.sort(key=lambda m: m.version, reverse=True)
            if pid in self.disabled:
                continue
            usable = []
            for m in found:
                fit = fits.get(m.host)
                if fit is None:
                    fit = fits[m.host] = m.host.contains(host_version, include_prerelease=True)
                if fit:
                    usable.append(m)
            if usable:
                self.usable[pid] = usable
            for m in usable:
                for name, version in m.provides.items():
                    self.services.setdefault(name, []).append((version, m))
        for providers in self.services.values():
            providers.sort(key=lambda vm: (vm[0], vm[1].version), reverse=True)

    def optional_present(self, dep: str, rng: Range) -> bool:
        return any(rng.contains(m.version) for m in self.usable.get(dep, ()))


class _Provider(AbstractProvider[_Req, _Cand, str]):
    def __init__(self, index: _Index, pinned: Mapping[str, Version]) -> None:
        self.index = index
        self.pinned = pinned
        self._deps: dict[tuple[str, Version], list[_Req]] = {}

    def identify(self, requirement_or_candidate: _Req | _Cand) -> str:
        return requirement_or_candidate.identifier

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, _Cand],
        candidates: Mapping[str, Iterator[_Cand]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> tuple[int, int, str]:
        causes = {c.requirement.identifier for c in backtrack_causes}
        if identifier.startswith(_SERVICE):
            count = len(self.index.services.get(identifier[len(_SERVICE) :], ()))
        else:
            count = len(self.index.usable.get(identifier, ()))
        return (0 if identifier in causes else 1, count, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[_Req]],
        incompatibilities: Mapping[str, Iterator[_Cand]],
    ) -> list[_Cand]:
        reqs = list(requirements[identifier])
        bad = {c.manifest.key for c in incompatibilities[identifier]}
        if identifier.startswith(_SERVICE):
            pool = [
                _Cand(identifier, version, m)
                for version, m in self.index.services.get(identifier[len(_SERVICE) :], ())
            ]
        else:
            pool = [_Cand(identifier, m.version, m) for m in self.index.usable.get(identifier, ())]
            pin = self.pinned.get(identifier)
            if pin is not None:
                pool.sort(key=lambda c: c.version != pin)
        return [
            c for c in pool if c.manifest.key not in bad and all(r.allows(c.version) for r in reqs)
        ]

    def is_satisfied_by(self, requirement: _Req, candidate: _Cand) -> bool:
        return requirement.allows(candidate.version)

    def get_dependencies(self, candidate: _Cand) -> list[_Req]:
        if candidate.identifier.startswith(_SERVICE):
            return [_Req(candidate.manifest.id, None, candidate.manifest.version)]
        key = candidate.manifest.key
        deps = self._deps.get(key)
        if deps is None:
            m = candidate.manifest
            deps = [_Req(d, r) for d, r in m.dependencies.items()]
            deps += [
                _Req(d, r)
                for d, r in m.optional_dependencies.items()
                if self.index.optional_present(d, r)
            ]
            deps += [_Req(_SERVICE + n, r) for n, r in m.requires.items()]
            self._deps[key] = deps
        return deps


def _search(
    index: _Index, roots: Sequence[str], pinned: Mapping[str, Version]
) -> dict[str, PluginManifest]:
    fast = _newest_first(index, roots, pinned)
    if fast is not None:
        return fast
    provider = _Provider(index, pinned)
    rounds = 20 * (len(index.usable) + len(index.services)) + 100
    # Resolution, not Resolver.resolve: the latter builds a result graph with a recursive
    # walk (_has_route_to_root) that never ends when leftover criteria form a cycle.
    # The pins are all we need; keep those reachable from the roots.
    state = Resolution(provider, BaseReporter()).resolve(
        [_Req(r, None) for r in roots], max_rounds=rounds
    )
    mapping: Mapping[str, _Cand] = state.mapping
    reachable: set[str] = set()
    frontier = [r for r in roots if r in mapping]
    while frontier:
        ident = frontier.pop()
        if ident in reachable:
            continue
        reachable.add(ident)
        frontier.extend(
            d.identifier
            for d in provider.get_dependencies(mapping[ident])
            if d.identifier in mapping
        )
    return {i: mapping[i].manifest for i in sorted(reachable) if not i.startswith(_SERVICE)}


def _newest_first(
    index: _Index, roots: Sequence[str], pinned: Mapping[str, Version]
) -> dict[str, PluginManifest] | None:
    """The answer without search, when there is no conflict to search around.

    Visit plugins dependents-first (in the order of the union of every version's
    dependencies) and give each the pinned, else the newest, version that every
    already-chosen dependent accepts. That is what resolvelib's newest-first search
    finds when it never has to backtrack, in one pass instead of resolvelib's
    rounds, each of which re-checks every pin (quadratic in the number of plugins).
    Returns None on a dead end or a cycle: the caller then runs the real search.
    """
    order = _needs_first(_needs_graph(index, roots))
    if order is None:
        return None
    wanted: dict[str, list[_Req]] = {r: [] for r in roots}
    chosen: dict[str, _Cand] = {}
    provider = _Provider(index, pinned)
    for ident in reversed(order):  # dependents before what they need
        reqs = wanted.get(ident)
        if reqs is None:
            continue  # nothing chosen needs it
        pick = _first_allowed(index, ident, pinned.get(ident), reqs)
        if pick is None:
            return None
        chosen[ident] = pick
        for dep in provider.get_dependencies(pick):
            wanted.setdefault(dep.identifier, []).append(dep)
    # every requirement, checked against the final choice (a service's provider may be
    # constrained by several parties)
    if not all(_allowed(chosen.get(ident), reqs) for ident, reqs in wanted.items()):
        return None
    return {i: c.manifest for i, c in chosen.items() if not i.startswith(_SERVICE)}


def _first_allowed(
    index: _Index, ident: str, pin: Version | None, reqs: Sequence[_Req]
) -> _Cand | None:
    """The first of ``_pool(index, ident, pin)`` that every requirement allows; for a
    plugin without a pin, without making a candidate of each version it passes."""
    if pin is not None or ident.startswith(_SERVICE):
        return next((c for c in _pool(index, ident, pin) if _allowed(c, reqs)), None)
    for m in index.usable.get(ident, ()):
        version = m.version
        if all(r.allows(version) for r in reqs):
            return _Cand(ident, version, m)
    return None


def _allowed(cand: _Cand | None, reqs: Sequence[_Req]) -> bool:
    return cand is not None and all(r.allows(cand.version) for r in reqs)


def _needs_first(graph: Mapping[str, set[str]]) -> list[str] | None:
    """Every node of ``graph`` (each one a key) after all it needs, or None on a cycle:
    one depth-first walk (graphlib's sorter builds a node object for each and walks the
    graph twice, for the cycle check and for the order)."""
    order: list[str] = []
    done: set[str] = set()
    walking: set[str] = set()
    for start in graph:
        if start in done:
            continue
        walking.add(start)
        stack = [(start, iter(graph[start]))]
        while stack:
            node, needs = stack[-1]
            for need in needs:
                if need in walking:
                    return None  # back to a node on the current path: a cycle
                if need not in done:
                    walking.add(need)
                    stack.append((need, iter(graph[need])))
                    break
            else:
                stack.pop()
                walking.discard(node)
                done.add(node)
                order.append(node)
    return order


def _needs_graph(index: _Index, roots: Sequence[str]) -> dict[str, set[str]]:
    """What each identifier (a plugin, or a service) may need, over all its versions."""
    graph: dict[str, set[str]] = {}
    frontier = list(roots)
    while frontier:
        pid = frontier.pop()
        if pid in graph:
            continue
        graph[pid] = needs = _needs(index, pid)
        frontier.extend(needs)
    return graph


def _needs(index: _Index, pid: str) -> set[str]:
    if pid.startswith(_SERVICE):
        return {m.id for _, m in index.services.get(pid[len(_SERVICE) :], ())}
    needs: set[str] = set()
    for m in index.usable.get(pid, ()):
        needs.update(m.dependencies)
        needs.update(d for d, r in m.optional_dependencies.items() if index.optional_present(d, r))
        needs.update(_SERVICE + n for n in m.requires)
    return needs


def _pool(index: _Index, ident: str, pin: Version | None) -> list[_Cand]:
    """The candidates for an identifier, newest first (a pinned version before all)."""
    if ident.startswith(_SERVICE):
        return [_Cand(ident, v, m) for v, m in index.services.get(ident[len(_SERVICE) :], ())]
    pool = [_Cand(ident, m.version, m) for m in index.usable.get(ident, ())]
    if pin is not None:
        pool.sort(key=lambda c: c.version != pin)
    return pool


# --------------------------------------------------------------------------- explanations


def _explain(index: _Index, root: str, exc: ResolutionImpossible[Any, Any]) -> PlugbayError:
    by_target: dict[str, list[tuple[_Req, _Cand | None]]] = {}
    for info in exc.causes:
        by_target.setdefault(info.requirement.identifier, []).append(
            (info.requirement, info.parent)
        )
    sentences: list[str] = []
    missing = False
    hints: list[str] = []
    requirements: list[dict[str, Any]] = []
    available: dict[str, list[str]] = {}
    for target, pairs in by_target.items():
        requirements += _requirements(target, pairs)
        empty = _empty_ranges(target, pairs)
        if empty:  # a mistake in the text of a range: no installed version would help
            sentences += [sentence for sentence, _ in empty]
            hints += [hint for _, hint in empty]
            continue
        wants = [
            f"{_who(parent)} requires {_name(target)} {req.describe()}"
            for req, parent in pairs
            if parent is not None
        ]
        found = _found(index, target, pairs)
        available[target] = found["versions"]
        if found["missing"]:
            missing = True
        # the plugin itself, asked for by nobody else: what was found says it all
        sentences.append(
            f"{' and '.join(dict.fromkeys(wants))}; {found['text']}" if wants else found["text"]
        )
        hints.append(found["hint"])
    message = "cannot be loaded: " + ". ".join(sentences)
    cls = MissingDependencyError if missing else ResolutionError
    return cls(
        message,
        plugin=root,
        where=first_dependency_at(root, by_target),
        hint="; ".join(dict.fromkeys(h for h in hints if h)) or None,
        details={"requirements": requirements, "available": available},
    )


def _requirements(target: str, pairs: Sequence[tuple[_Req, _Cand | None]]) -> list[dict[str, Any]]:
    return [
        {"target": target, "range": req.describe(), "by": parent.manifest.id if parent else None}
        for req, parent in pairs
    ]


def _empty_ranges(target: str, pairs: Sequence[tuple[_Req, _Cand | None]]) -> list[tuple[str, str]]:
    """(sentence, hint) for each range on ``target`` that matches no version at all."""
    out = []
    for req, parent in pairs:
        if parent is None or req.range is None or not req.range.is_empty:
            continue
        m = parent.manifest
        table = dependency_heading(m, target)
        out.append(
            (
                f"{_who(parent)} requires {_name(target)} {req.range}, a range that matches no "
                "version at all (it is empty)",
                f"correct that range under {table} in {dependency_at(m, target)}: "
                f"{req.range.why_empty}, so "
                f"installing a version of {_name(target)} will not help; {EMPTY_RANGE_FIX}",
            )
        )
    return out


def _who(parent: _Cand) -> str:
    """The plugin (or service) a requirement comes from, as an explanation names it."""
    if parent.identifier.startswith(_SERVICE):
        return f"service '{parent.identifier[len(_SERVICE) :]}'"
    return f"'{parent.manifest.id}' {parent.manifest.version}"


def _name(target: str) -> str:
    return f"service '{target[len(_SERVICE) :]}'" if target.startswith(_SERVICE) else f"'{target}'"


def _ranges_at(target: str, wants: Sequence[tuple[_Req, _Cand]]) -> str:
    """Each range on ``target`` with the manifest that sets it: where to change one."""
    at = [
        f"{req.describe()} under {dependency_heading(parent.manifest, target)} in "
        f"{dependency_at(parent.manifest, target)}"
        for req, parent in wants
        if not parent.identifier.startswith(_SERVICE)  # a provider's own version: no text
    ]
    return "; ".join(dict.fromkeys(at))


def _prerelease_note(found: Sequence[Version], wants: Sequence[tuple[_Req, _Cand]]) -> str:
    """Why a pre-release that looks in range is not: ranges leave them out unless asked."""
    held_back = [
        str(v)
        for v in found
        if v.prerelease
        and wants
        and all(
            r.range is not None and r.range.contains(v, include_prerelease=True) for r, _ in wants
        )
    ]
    if not held_back:
        return ""
    what = "is a pre-release" if len(held_back) == 1 else "are pre-releases"
    return (
        f" ({', '.join(held_back)} {what}, which a range contains only when it names a "
        "pre-release of the same "
        "MAJOR.MINOR.PATCH (npm) or any pre-release (PEP 440): docs/version-ranges.md)"
    )


def _found_for_another_host(
    index: _Index, target: str, known: Sequence[PluginManifest]
) -> dict[str, Any]:
    """No version of ``target`` runs on this host: its ``host`` range says which to use,
    or is a mistake (empty) to correct in its manifest."""
    needs = ", ".join(f"{m.version} needs host {m.host}" for m in known)
    empty = next((m for m in known if m.host.is_empty), None)
    if empty is not None:
        hint = (
            f'correct host = "{empty.host}" in {empty.location}: that range matches no '
            f"version at all ({empty.host.why_empty}); {EMPTY_RANGE_FIX}"
        )
    else:
        hint = (
            f"install a version of '{target}' whose host range contains "
            f"{index.host_version}, or run a plugbay that its range allows (host in "
            f"{known[0].location})"
        )
    return {
        "missing": False,
        "versions": [str(m.version) for m in known],
        "text": f"no version of {_name(target)} runs on this host, plugbay {index.host_version}: {needs}",
        "hint": hint,
    }


def _found_service(index: _Index, name: str, where: str) -> dict[str, Any]:
    providers = index.services.get(name, [])
    if not providers:
        return {
            "missing": True,
            "versions": [],
            "text": "no plugin provides it",
            "hint": f"install a plugin that provides '{name}'",
        }
    listed = ", ".join(f"{v} by '{m.id}' {m.version}" for v, m in providers)
    return {
        "missing": False,
        "versions": [str(v) for v, _ in providers],
        "text": f"provided: {listed} — none fits",
        "hint": f"install a provider of '{name}' in the required range, or relax the range"
        + (f" ({where})" if where else ""),
    }


def _found(
    index: _Index, target: str, pairs: Sequence[tuple[_Req, _Cand | None]]
) -> dict[str, Any]:
    wants = [(req, parent) for req, parent in pairs if parent is not None]
    where = _ranges_at(target, wants)
    if target.startswith(_SERVICE):
        return _found_service(index, target[len(_SERVICE) :], where)
    known = index.all.get(target, [])
    if target in index.disabled and known:
        return {
            "missing": False,
            "versions": [str(m.version) for m in known],
            "text": f"'{target}' is disabled",
            "hint": f"enable it with 'plugbay enable {target}'",
        }
    if not known:
        return {
            "missing": True,
            "versions": [],
            "text": f"no plugin '{target}' is installed",
            "hint": f"install '{target}', or remove the dependency"
            + (f": {where}" if where else ""),
        }
    if target not in index.usable:  # every version it has asks for another host
        return _found_for_another_host(index, target, known)
    parts = []
    for m in known:
        if m.host.contains(index.host_version, include_prerelease=True):
            parts.append(str(m.version))
        else:
            parts.append(f"{m.version} (needs host {m.host}, this host is {index.host_version})")
    note = _prerelease_note([m.version for m in known], wants)
    return {
        "missing": False,
        "versions": [str(m.version) for m in known],
        "text": f"versions found: {', '.join(parts)} — none satisfies every requirement{note}",
        "hint": f"install a version of '{target}' that every range allows, or change a range"
        + (f": {where}" if where else ""),
    }


# --------------------------------------------------------------------------- the entry point


def resolve(
    candidates: Iterable[PluginManifest],
    *,
    host_version: Version,
    requested: Iterable[str] | None = None,
    pinned: Mapping[str, Version] | None = None,
    disabled: Collection[str] = (),
) -> ResolutionPlan:
    """Choose a version of every requested plugin (default: all) and order them."""
    index = _Index(candidates, host_version, disabled)
    pins = dict(pinned or {})
    # an id nobody provides is the caller's question ("no such plugin"), not a failure here
    wanted = set(requested) & set(index.all) if requested is not None else set(index.all)
    roots = sorted(wanted - set(disabled))
    failures: dict[str, PlugbayError] = {}
    selected: dict[str, PluginManifest] = {}
    try:
        selected = _search(index, roots, pins)
    except (ResolutionImpossible, ResolutionTooDeep):
        selected = _partial(index, roots, pins, failures)
    edges = {pid: _edges(m, selected, index) for pid, m in selected.items()}
    order = _order(selected, edges, failures)
    for pid in list(selected):
        if pid in failures:
            del selected[pid]
            edges.pop(pid, None)
    notes = {pid: _notes(m, selected, index) for pid, m in selected.items()}
    return ResolutionPlan(
        selected=selected,
        order=order,
        edges=edges,
        failures=failures,
        notes={k: v for k, v in notes.items() if v},
    )


def _partial(
    index: _Index,
    roots: Sequence[str],
    pins: Mapping[str, Version],
    failures: dict[str, PlugbayError],
) -> dict[str, PluginManifest]:
    """The joint search failed: find the roots that cannot load and resolve the rest."""
    alone_ok: list[str] = []
    for root in roots:
        try:
            _search(index, [root], pins)
            alone_ok.append(root)
        except ResolutionImpossible as exc:
            if _some_version_resolves(index, root, pins):
                alone_ok.append(root)
            else:
                failures[root] = _explain(index, root, exc)
        except ResolutionTooDeep:
            failures[root] = ResolutionError(
                "cannot be loaded: resolving its dependencies took too many steps",
                plugin=root,
                hint="simplify the dependency ranges",
            )
    _blame_failed_dependencies(index, failures)
    kept: list[str] = []
    selected: dict[str, PluginManifest] = {}
    for root in alone_ok:
        try:
            selected = _search(index, [*kept, root], pins)
            kept.append(root)
        except ResolutionImpossible as exc:
            failures[root] = _explain(index, root, exc)
        except ResolutionTooDeep:
            failures[root] = ResolutionError(
                "cannot be loaded together with the others: resolution took too many steps",
                plugin=root,
            )
    # a plugin a successful search selected can load, whatever its own search said
    for pid in selected:
        failures.pop(pid, None)
    return selected


def _some_version_resolves(index: _Index, root: str, pins: Mapping[str, Version]) -> bool:
    """resolvelib's backjumping can give up on a root that one of its older versions,
    pinned, satisfies (a newer version's dependencies conflict with the root itself):
    try each version, newest first, before calling the root impossible."""
    if root in pins:
        return False
    for manifest in sorted(index.usable.get(root, []), key=lambda m: m.version, reverse=True):
        try:
            _search(index, [root], {**pins, root: manifest.version})
            return True
        except (ResolutionImpossible, ResolutionTooDeep):
            continue
    return False


def _blame_failed_dependencies(index: _Index, failures: dict[str, PlugbayError]) -> None:
    """A plugin that fails only because a dependency fails says so, naming it."""
    changed = True
    while changed:
        changed = False
        for pid, error in list(failures.items()):
            if error.details.get("blamed"):
                continue
            versions = index.usable.get(pid, [])
            if not versions:
                continue
            culprits = sorted(
                {d for m in versions for d in m.dependencies if d in failures and d != pid}
            )
            if culprits and all(any(d in failures for d in m.dependencies) for m in versions):
                dep = culprits[0]
                why = failures[dep].message.removeprefix("cannot be loaded: ")
                failures[pid] = type(failures[dep])(
                    f"cannot be loaded: it needs '{dep}', which cannot be loaded: {why}",
                    plugin=pid,
                    where=failures[dep].where,
                    hint=failures[dep].hint,
                    details={**failures[dep].details, "blocked_by": dep, "blamed": True},
                )
                changed = True


def _edges(
    m: PluginManifest, selected: Mapping[str, PluginManifest], index: _Index
) -> frozenset[str]:
    needs = set(m.dependencies)
    needs |= {
        d
        for d, r in m.optional_dependencies.items()
        if d in selected and r.contains(selected[d].version)
    }
    for name, rng in m.requires.items():
        for version, provider in index.services.get(name, []):
            chosen = selected.get(provider.id)
            if chosen is not None and chosen.key == provider.key and rng.contains(version):
                needs.add(provider.id)
                break
    needs.discard(m.id)
    return frozenset(needs)


def _notes(m: PluginManifest, selected: Mapping[str, PluginManifest], index: _Index) -> list[str]:
    notes = []
    for dep, rng in m.optional_dependencies.items():
        if dep in selected and rng.contains(selected[dep].version):
            continue
        if dep not in index.all:
            notes.append(f"optional dependency '{dep}' ({rng}) skipped: not installed")
        elif dep in index.disabled:
            notes.append(f"optional dependency '{dep}' ({rng}) skipped: disabled")
        else:
            have = ", ".join(str(x.version) for x in index.all[dep])
            notes.append(
                f"optional dependency '{dep}' ({rng}) skipped: no compatible version (found {have})"
            )
    return notes


def _order(
    selected: Mapping[str, PluginManifest],
    edges: dict[str, frozenset[str]],
    failures: dict[str, PlugbayError],
) -> list[str]:
    """Load order, ties broken by id; plugins on a cycle, and what needs them, fail."""
    alive = set(selected)
    while True:
        ordered = _rounds(alive, edges)
        if ordered is not None:
            return ordered
        # a cycle: graphlib names it
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for pid in sorted(alive):
            sorter.add(pid, *sorted(edges[pid] & alive))
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle: list[str] = list(exc.args[1])
            cycle = _rotate(cycle)
            path = " → ".join(cycle)
            members = set(cycle)
            for pid in members:
                failures[pid] = DependencyCycleError(
                    f"cannot be loaded: dependency cycle {path}",
                    plugin=pid,
                    hint="break the cycle: one of these plugins must not depend on the next",
                    details={"cycle": cycle},
                )
            alive -= members
            for pid in _needing(members, alive, edges):
                failures[pid] = DependencyCycleError(
                    f"cannot be loaded: it needs a plugin on the dependency cycle {path}",
                    plugin=pid,
                    hint="break the cycle first",
                    details={"cycle": cycle},
                )
                alive.discard(pid)
            continue
        order: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            order.extend(ready)
            sorter.done(*ready)
        return order


def _rounds(alive: set[str], edges: Mapping[str, frozenset[str]]) -> list[str] | None:
    """graphlib's order, without its node objects and cycle walk: each round, every
    plugin whose needs have all started, by id; None when a cycle keeps some waiting."""
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for pid in alive:
        needs = edges[pid] & alive
        waiting[pid] = len(needs)
        for need in needs:
            dependents.setdefault(need, []).append(pid)
    ready = sorted(pid for pid, count in waiting.items() if not count)
    order: list[str] = []
    while ready:
        order.extend(ready)
        unblocked = []
        for pid in ready:
            for dependent in dependents.get(pid, ()):
                waiting[dependent] -= 1
                if not waiting[dependent]:
                    unblocked.append(dependent)
        ready = sorted(unblocked)
    return order if len(order) == len(alive) else None


def _rotate(cycle: list[str]) -> list[str]:
    """graphlib gives the cycle as [a, …, a] in dependency direction; start at the smallest id
    and read it as 'depends on'."""
    ring = cycle[:-1][::-1]
    start = ring.index(min(ring))
    ring = ring[start:] + ring[:start]
    return [*ring, ring[0]]


def _needing(members: set[str], alive: set[str], edges: Mapping[str, frozenset[str]]) -> list[str]:
    out: list[str] = []
    bad = set(members)
    changed = True
    while changed:
        changed = False
        for pid in sorted(alive - set(out)):
            if edges[pid] & bad:
                out.append(pid)
                bad.add(pid)
                changed = True
    return out
