"""The spec's ``PluginRegistry``: every known version of every plugin, and their graph.

It holds manifests only (static data); what is *running* is the manager's.
Several versions of one plugin may be registered side by side; resolution picks
the one to load.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from plugbay.api import PluginDependency
from plugbay.api.errors import (
    DuplicatePluginError,
    PluginNotFound,
    ResolutionError,
    plugin_not_known,
)
from plugbay.model.manifest import PluginManifest
from plugbay.model.resolve import ResolutionPlan, resolve
from plugbay.model.versions import Range, Version

__all__ = ["PluginRegistry"]


class PluginRegistry:
    def __init__(self, host_version: Version) -> None:
        self.host_version = host_version
        self._plugins: dict[str, dict[Version, PluginManifest]] = {}

    # ------------------------------------------------------------------ register

    def register(self, manifest: PluginManifest) -> None:
        """Add one version. The same id and version from another place is refused."""
        versions = self._plugins.setdefault(manifest.id, {})
        existing = versions.get(manifest.version)
        if existing is not None:
            if existing.path is not None and existing.path == manifest.path:
                return
            raise DuplicatePluginError(
                f"'{manifest.id}' {manifest.version} is provided twice: by {existing.location} "
                f"and by {manifest.location}",
                plugin=manifest.id,
                where=manifest.location,
                hint="remove one of them, or give one a different version; "
                f"the first ({existing.location}) is used",
                details={"locations": [existing.location, manifest.location]},
            )
        versions[manifest.version] = manifest

    def replace(self, manifest: PluginManifest) -> None:
        """Register ``manifest``, replacing what the same file said before (a reload)."""
        versions = self._plugins.setdefault(manifest.id, {})
        for version, known in list(versions.items()):
            if known.path is not None and known.path == manifest.path:
                del versions[version]
        self.register(manifest)

    def unregister(self, plugin_id: str, version: Version | None = None) -> None:
        versions = self._versions(plugin_id)
        if version is None:
            del self._plugins[plugin_id]
            return
        if version not in versions:
            raise PluginNotFound(
                f"version {version} of '{plugin_id}' is not registered",
                plugin=plugin_id,
                hint=f"registered versions: {', '.join(str(v) for v in self.versions(plugin_id))}",
            )
        del versions[version]
        if not versions:
            del self._plugins[plugin_id]

    # ------------------------------------------------------------------ the spec's members

    @property
    def plugins(self) -> dict[str, PluginManifest]:
        """The spec's ``plugins`` map: id → the newest registered manifest."""
        return {pid: self.get(pid) for pid in sorted(self._plugins)}

    @property
    def dependencies(self) -> dict[str, dict[str, str]]:
        """The spec's ``dependencies`` graph (see :meth:`dependency_graph`)."""
        return self.dependency_graph()

    # ------------------------------------------------------------------ queries

    def ids(self) -> list[str]:
        return sorted(self._plugins)

    def versions(self, plugin_id: str) -> list[Version]:
        """Every registered version, newest first."""
        return sorted(self._versions(plugin_id), reverse=True)

    def get(self, plugin_id: str, version: Version | None = None) -> PluginManifest:
        versions = self._versions(plugin_id)
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise PluginNotFound(
                f"version {version} of '{plugin_id}' is not registered",
                plugin=plugin_id,
                hint=f"registered versions: {', '.join(str(v) for v in self.versions(plugin_id))}",
            ) from None

    def manifests(self) -> list[PluginManifest]:
        return [m for pid in sorted(self._plugins) for _, m in sorted(self._plugins[pid].items())]

    def resolve(
        self, dependency: PluginDependency | str, range: str | Range | None = None
    ) -> PluginManifest:
        """The newest registered version that satisfies the range and this host."""
        if isinstance(dependency, PluginDependency):
            plugin_id, wanted = dependency.id, Range.parse(dependency.range)
        else:
            plugin_id = dependency
            wanted = range if isinstance(range, Range) else Range.parse(range or "*")
        versions = self._versions(plugin_id)
        fitting = [
            m
            for v, m in sorted(versions.items(), reverse=True)
            if wanted.contains(v) and m.host.contains(self.host_version, include_prerelease=True)
        ]
        if fitting:
            return fitting[0]
        listed = ", ".join(
            str(v)
            if m.host.contains(self.host_version, include_prerelease=True)
            else f"{v} (needs host {m.host})"
            for v, m in sorted(versions.items(), reverse=True)
        )
        raise ResolutionError(
            f"no registered version of '{plugin_id}' satisfies {wanted} on host {self.host_version}; "
            f"versions found: {listed}",
            plugin=plugin_id,
            hint=f"install a version of '{plugin_id}' that matches {wanted}",
        )

    def resolve_all(
        self,
        *,
        requested: Iterable[str] | None = None,
        pinned: Mapping[str, Version] | None = None,
        disabled: Collection[str] = (),
    ) -> ResolutionPlan:
        """One version of every (requested) plugin and the order to start them."""
        return resolve(
            self.manifests(),
            host_version=self.host_version,
            requested=requested,
            pinned=pinned,
            disabled=disabled,
        )

    def dependency_graph(self) -> dict[str, dict[str, str]]:
        """id → {dependency id: range}, over each plugin's newest version (for ``plugbay deps``)."""
        graph: dict[str, dict[str, str]] = {}
        for pid in sorted(self._plugins):
            m = self.get(pid)
            graph[pid] = {d: str(r) for d, r in m.dependencies.items()}
        return graph

    def dependents_of(self, plugin_id: str) -> list[str]:
        """Ids any of whose versions depend on ``plugin_id``."""
        return sorted(
            pid
            for pid, versions in self._plugins.items()
            if pid != plugin_id
            and any(
                plugin_id in m.dependencies or plugin_id in m.optional_dependencies
                for m in versions.values()
            )
        )

    def __contains__(self, plugin_id: object) -> bool:
        return plugin_id in self._plugins

    def __len__(self) -> int:
        return len(self._plugins)

    def _versions(self, plugin_id: str) -> dict[Version, PluginManifest]:
        versions = self._plugins.get(plugin_id)
        if versions is None:
            raise plugin_not_known(plugin_id, self._plugins)
        return versions
