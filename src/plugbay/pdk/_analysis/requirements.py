"""The plugin's Python requirements: installable here, and covering what it imports."""

from __future__ import annotations

import ast
import sys
from functools import cache

from plugbay.pdk._analysis.base import _Context, _host_version


def _requirements_key(manifest_text: str) -> str:
    return "dependencies" if "python-dependencies" not in manifest_text else "python-dependencies"


@cache
def _host_distributions() -> dict[str, list[str]]:
    """Top-level module → the distributions that provide it, in the host's environment."""
    import importlib.metadata

    return dict(importlib.metadata.packages_distributions())


class _RequirementChecks(_Context):
    """Python requirements against the host and the plugin's imports."""

    def _check_python_requirements(self) -> None:
        """Each requirement is one uv can install here, and each import of a third-party
        module is covered by one (else it fails at load: 'no module named …')."""
        self._check_imports_covered(self._check_requirements())

    def _check_requirements(self) -> set[str]:
        """Warn about requirements a host refuses; the canonical names of all of them."""
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        required: set[str] = set()
        for text in self.m.python_dependencies:
            req = Requirement(text)  # the manifest parser checked the syntax
            name = canonicalize_name(req.name)
            required.add(name)
            if req.url is not None:
                self.add(
                    "warning",
                    "python-dependency",
                    f"'{text}' is a URL or local path: a host refuses it unless its policy "
                    "allows direct references",
                    self.in_manifest(_requirements_key(self.manifest_text)),
                    "publish the package and require it by name and version",
                )
            host = _host_version()
            if name == "plugbay" and not req.specifier.contains(host, prereleases=True):
                self.add(
                    "error",
                    "python-dependency",
                    f"'{text}' excludes this host's plugbay {host}: install would refuse it",
                    self.in_manifest(_requirements_key(self.manifest_text)),
                    f"widen the range to include {host}",
                )
        return required

    def _check_imports_covered(self, required: set[str]) -> None:
        """Warn once per third-party module imported that no requirement provides."""
        from packaging.utils import canonicalize_name

        own = {name.split(".")[0] for name in self.modules}
        own |= {p.stem for p in self.root.iterdir()} if self.root.is_dir() else set()
        provided = _host_distributions()
        warned: set[str] = set()
        for module in self.modules.values():
            for node in module.nodes:
                for top in _top_level_imports(node):
                    if top in warned or top in own or _always_importable(top):
                        continue
                    if top in self.unimportable:
                        continue  # an error already: not installed here
                    dists = {canonicalize_name(d) for d in provided.get(top, [])}
                    if canonicalize_name(top) in required or dists & required:
                        continue
                    warned.add(top)
                    self.add(
                        "warning",
                        "python-dependency",
                        f"imports '{top}', which no Python requirement of the plugin covers",
                        (module.path, getattr(node, "lineno", None)),
                        f'add it to python-dependencies (e.g. "{sorted(dists)[0] if dists else top}'
                        '>=…"); a sandboxed plugin imports only its own environment and plugbay',
                    )


def _top_level_imports(node: ast.AST) -> list[str]:
    """The top-level modules an absolute import statement names."""
    if isinstance(node, ast.Import):
        return [a.name.split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module.split(".")[0]]
    return []


def _always_importable(top: str) -> bool:
    """The standard library and plugbay are there in every plugin's environment."""
    return top in ("plugbay", "__future__") or top in sys.stdlib_module_names
