"""The plugin's Python requirements: installable here, and covering what it imports."""

from __future__ import annotations

import ast
import sys
from functools import cache
from typing import TYPE_CHECKING, Final

from plugbay.pdk._analysis.base import _Context, _host_version

if TYPE_CHECKING:
    from packaging.requirements import Requirement

#: the packages of plugbay's runtime besides plugbay, which the host provides to every
#: plugin's worker (``plugbay.runtime.environments.RUNTIME_PACKAGES``; the PDK does not
#: import the runtime, a test holds the two lists the same)
HOST_PROVIDED: Final = ("msgspec", "packaging", "typing_extensions")


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
            self._check_requirement_range(req, text)
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

    def _check_requirement_range(self, req: Requirement, text: str) -> None:
        """An error for a range no version can be in (``humanize>=4,<4``,
        ``requests<0.0.0``, ``attrs==1.0,!=1.0``), and for a range that excludes the
        host's version of a package the host provides."""
        import importlib.metadata

        from packaging.utils import canonicalize_name

        from plugbay.model._pep440_room import pep440_why_empty

        written = _written_specifier(req, text)
        why = pep440_why_empty(written) if req.url is None and written else None
        if why is not None:
            self.add(
                "error",
                "python-dependency",
                f"'{text}' can be met by no version of {req.name}: its range is empty: {why}",
                self._requirement_line(text),
                f"correct the range in {self.manifest_file}: {why}, so installing a version "
                f"of {req.name} will not help; write the versions it works with, e.g. "
                f"'{req.name}>=1.2,<2'",
            )
            return
        provided = {str(canonicalize_name(p)): p for p in HOST_PROVIDED}.get(
            str(canonicalize_name(req.name))
        )
        if provided is None or req.url is not None:
            return
        try:
            have = importlib.metadata.version(provided)
        except importlib.metadata.PackageNotFoundError:
            return
        if not req.specifier.contains(have, prereleases=True):
            self.add(
                "error",
                "python-dependency",
                f"'{text}' excludes this host's {provided} {have}, which every worker imports "
                "(a package of plugbay's runtime the host provides): install would refuse it",
                self._requirement_line(text),
                f"widen the range to include {have}, or drop the requirement: the host "
                f"provides {provided}",
            )

    def _requirement_line(self, text: str) -> tuple[str, int | None]:
        """The manifest file and the line that holds the requirement ``text`` (else the
        line of the requirements' key)."""
        for quoted in (f'"{text}"', f"'{text}'"):
            at = self.manifest_text.find(quoted)
            if at >= 0:
                return self.manifest_file, self.manifest_text.count("\n", 0, at) + 1
        return self.in_manifest(_requirements_key(self.manifest_text))

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


def _written_specifier(req: Requirement, text: str) -> str:
    """The version clauses of the requirement ``text`` in the author's order (to name
    them as written), else as packaging orders them."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    head = text.split(";", 1)[0]
    at = next((i for i, ch in enumerate(head) if ch in "<>=!~"), None)
    if at is not None:
        written = head[at:].strip().rstrip(")").strip()
        try:
            if SpecifierSet(written) == req.specifier:
                return written
        except InvalidSpecifier:
            pass
    return str(req.specifier)


def _top_level_imports(node: ast.AST) -> list[str]:
    """The top-level modules an absolute import statement names."""
    if isinstance(node, ast.Import):
        return [a.name.split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module.split(".")[0]]
    return []


def _always_importable(top: str) -> bool:
    """The standard library, plugbay and the packages of its runtime are there in every
    plugin's environment."""
    return top in ("plugbay", "__future__", *HOST_PROVIDED) or top in sys.stdlib_module_names
