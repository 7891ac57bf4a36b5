"""Dependency, optional-dependency, service and host ranges against the plugins a
host knows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import PluginManifest
from plugbay.pdk._analysis.base import Severity, _Context, _host_version
from plugbay.pdk._analysis.together import check_together

if TYPE_CHECKING:
    from plugbay.model.versions import Range


class _DependencyChecks(_Context):
    """Every range can be met by what the host knows, one by one and together."""

    def _check_range_spellings(self) -> None:
        """A range no version can be in: its text is the mistake. A range npm and PEP 440
        read differently: say how plugbay reads it."""
        from plugbay.model.range_spelling import ambiguity
        from plugbay.model.versions import EMPTY_RANGE_FIX

        m = self.m
        # an optional dependency out of reach leaves the plugin loading without it
        ranges: list[tuple[str, str, Range, Severity]] = [
            ("host", "the host range", m.host, "error")
        ]
        ranges += [
            (dep, f"the range of dependency '{dep}'", r, "error")
            for dep, r in m.dependencies.items()
        ]
        ranges += [
            (dep, f"the range of optional dependency '{dep}'", r, "warning")
            for dep, r in m.optional_dependencies.items()
        ]
        ranges += [
            (service, f"the range of required service '{service}'", r, "error")
            for service, r in m.requires.items()
        ]
        for key, what, rng, severity in ranges:
            if rng.is_empty:
                self.add(
                    severity,
                    "range",
                    f"{what}, {rng}, matches no version at all: it is empty",
                    self.in_manifest(key),
                    f"correct the range in {self.manifest_file}: {rng.why_empty}, so "
                    f"installing a version will not help; {EMPTY_RANGE_FIX}",
                )
                continue
            found = ambiguity(rng.text)
            if found is not None:
                self.add("warning", "range", found.message, self.in_manifest(key), found.hint)

    def _check_dependencies(self, known: Sequence[PluginManifest]) -> None:
        m = self.m
        self._check_host_range()
        others = [k for k in known if k.id != m.id]
        self._check_plugin_dependencies(others)
        self._check_required_services(others)
        self._check_provided_services(others)
        if not self.result.errors and (m.dependencies or m.requires):
            self._check_resolution(others)
        if not self.result.errors:
            check_together(self, known)

    def _check_host_range(self) -> None:
        from plugbay.model.versions import Version

        m = self.m
        host_version = Version.parse(_host_version())
        if host_version not in m.host and not m.host.is_empty:  # empty: said above
            self.add(
                "error",
                "host",
                f"this host is plugbay {host_version}, outside the plugin's host range {m.host}",
                self.in_manifest("host"),
                f"widen host to include {host_version}",
            )

    def _check_plugin_dependencies(self, others: Sequence[PluginManifest]) -> None:
        """Each (optional) dependency is a plugin the host knows, in a version in range."""
        m = self.m
        by_id: dict[str, list[PluginManifest]] = {}
        for k in others:
            by_id.setdefault(k.id, []).append(k)
        for optional, table in ((False, m.dependencies), (True, m.optional_dependencies)):
            severity: Severity = "warning" if optional else "error"
            for dep, rng in table.items():
                versions = sorted(k.version for k in by_id.get(dep, []))
                if not versions:
                    self.add(
                        severity,
                        "dependency",
                        f"{'optional ' if optional else ''}dependency '{dep}' is not a plugin the "
                        "host knows",
                        self.in_manifest(dep),
                        "install it, check the id, or point --plugins at where it is",
                    )
                elif not any(v in rng for v in versions) and not rng.is_empty:
                    self.add(
                        severity,
                        "dependency",
                        f"no known version of '{dep}' satisfies {rng} (known: "
                        f"{', '.join(str(v) for v in versions)})",
                        self.in_manifest(dep),
                        f"widen the range, or install a version of '{dep}' in {rng}",
                    )

    def _check_required_services(self, others: Sequence[PluginManifest]) -> None:
        for service, rng in self.m.requires.items():
            providers = [(k.id, k.provides[service]) for k in others if service in k.provides]
            if not any(v in rng for _, v in providers) and not rng.is_empty:
                self.add(
                    "error",
                    "service",
                    f"no known plugin provides service '{service}' {rng}"
                    + (
                        " (provided: " + ", ".join(f"{p} {v}" for p, v in providers) + ")"
                        if providers
                        else ""
                    ),
                    self.in_manifest(service),
                    "install a provider, or change the range under [services] requires",
                )

    def _check_provided_services(self, others: Sequence[PluginManifest]) -> None:
        for service, version in self.m.provides.items():
            for k in others:
                if service in k.provides and k.provides[service] == version:
                    self.add(
                        "info",
                        "service",
                        f"'{k.id}' also provides service '{service}' {version}",
                        self.in_manifest(service),
                        "the host picks one provider; make sure that is intended",
                    )

    def _check_resolution(self, others: Sequence[PluginManifest]) -> None:
        """Every range can be met one by one; the resolver checks they can be met together."""
        from plugbay.model.registry import PluginRegistry
        from plugbay.model.versions import Version

        registry = PluginRegistry(Version.parse(_host_version()))
        for manifest in [*others, self.m]:
            try:
                registry.register(manifest)
            except PlugbayError:
                continue
        plan = registry.resolve_all(requested=[self.m.id])
        error = plan.failures.get(self.m.id)
        if error is not None:
            self.add(
                "error",
                "dependency",
                f"the dependencies cannot all be met together: {error.message}",
                self.in_manifest("dependencies"),
                error.hint or "see 'plugbay deps'",
            )
