"""The analyzer behind ``plugbay validate``: the spec's ``DevTools.analyzer``.

It reads a plugin without running it: the manifest, then every module of the
plugin parsed with :mod:`ast` (never imported), and reports findings, each with
a file, a line, a severity and a fix:

* the manifest parses and its config defaults satisfy their schema: every problem
  of it at once (each unknown key with the closest known one), each at its line, and
  the code checked all the same against what of the manifest is right;
* a ``pyproject.toml`` plugin's ``[project]`` version and entry point are the
  manifest's (``plugbay build`` refuses them otherwise);
* the entry module and class exist, the class derives from its type's base
  class, and every interface method it overrides keeps the interface's
  signature (``async`` or not, the parameters);
* every ``@command`` has named, annotated parameters and a return annotation,
  built only of types the call boundary can check and carry across a process;
* the code reads only config keys the schema declares, emits only the events the
  manifest declares, and has a handler for each event it listens to, none other;
* what its modules import when they are imported can be found: its own modules (by
  relative imports), the names it imports from them, and third-party modules;
* dependency, optional-dependency and service ranges can be met by the plugins
  the host knows, and the host's version is in the plugin's ``host`` range;
* the plugin loads together with every plugin the host knows, one version of each
  id for all, as a host loads them: a plugin the host would leave out beside
  another, or that would push another out, is an error naming both. The plugins
  validated in one :func:`validate_plugins` call are among those the host knows,
  wherever they are (a dependency one of them provides is met), resolved together
  once; of two versions of one id given so, the one a host would leave out is an
  error naming the one it would take, and of two copies of one id and version, the
  one given second (a host refuses the copy it finds second as provided twice), and
  a copy of one of the plugins directories or of an installed package, naming the
  copy a host would take;
* what the code imports and calls matches the permissions it asks for (a plugin
  that imports ``socket`` but asks for no network is warned, naming the line).

Only then, when nothing above is an error and ``import_check`` is on, is the
entry class imported into a throwaway namespace (as the host would) to catch
what only an import shows: an exception at module level, an annotation that
does not resolve; the finding names the line of the plugin's own code that raised.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from plugbay.api.errors import PlugbayError
from plugbay.model._manifest_problems import ManifestReading, read_manifest
from plugbay.model.manifest import PluginManifest, is_dotted_id
from plugbay.pdk._analysis.base import (
    Finding,
    Severity,
    ValidationResult,
    _Context,
    source_lines,
)
from plugbay.pdk._analysis.base import _is_command as _is_command  # for plugbay.pdk.docs
from plugbay.pdk._analysis.config import _ConfigChecks
from plugbay.pdk._analysis.dependencies import _DependencyChecks
from plugbay.pdk._analysis.events import _EventChecks
from plugbay.pdk._analysis.import_check import _ImportCheck
from plugbay.pdk._analysis.imports import _ImportChecks
from plugbay.pdk._analysis.interface import _InterfaceChecks
from plugbay.pdk._analysis.permissions import _PermissionChecks
from plugbay.pdk._analysis.project import _ProjectChecks
from plugbay.pdk._analysis.requirements import _RequirementChecks
from plugbay.pdk._analysis.together import check_given_twice, with_given

__all__ = [
    "Finding",
    "Severity",
    "ValidationResult",
    "known_plugins",
    "validate_plugin",
    "validate_plugins",
]


# --------------------------------------------------------------------------- the plugins a host knows


def known_plugins(
    plugin_dirs: Iterable[Path] = (), *, entry_points: bool = True
) -> list[PluginManifest]:
    """Every manifest a host on ``plugin_dirs`` would see (problems are skipped), the
    bundled plugins shipped with plugbay included (a dependency on one is satisfied)."""
    from plugbay.model.bundled import bundled_root
    from plugbay.model.discover import discover, discover_directory

    found = discover(
        [d for d in plugin_dirs if Path(d).is_dir()], entry_points=entry_points
    ).manifests
    root = bundled_root()
    if root is not None:
        have = {m.id for m in found}
        found += [m for m in discover_directory(root).manifests if m.id not in have]
    return found


# --------------------------------------------------------------------------- entry point


def validate_plugin(
    path: Path,
    *,
    known: Sequence[PluginManifest] | None = None,
    import_check: bool = True,
    reading: ManifestReading | None = None,
) -> ValidationResult:
    """Analyze the plugin at ``path`` (its directory, ``plugin.toml``, ``pyproject.toml``
    or a built wheel: checked as a host would install it, then like its directory).

    ``known`` is what the host knows (for dependencies and services); ``None``
    skips those checks. ``reading`` is the manifest at ``path`` when it has been read
    already (:func:`validate_plugins` reads each once); a wheel's is read unpacked.
    See the module docstring for what is checked.
    """
    if Path(path).suffix == ".whl":
        return _validate_wheel(Path(path), known=known, import_check=import_check)
    result = ValidationResult(Path(path))
    if reading is None:
        reading = read_manifest(Path(path))
    result.findings += [_manifest_finding(exc, Path(path)) for exc in reading.problems]
    manifest = reading.manifest  # with problems: what of it is right, for the code's checks
    if manifest is not None and ("id",) not in reading.broken:
        _check_id_form(manifest, result)
    if manifest is not None and not reading.problems:
        result.manifest = manifest
        if manifest.runtime == "wasm":
            _validate_wasm(manifest, result, import_check=import_check)
    if manifest is not None and manifest.runtime != "wasm":
        analysis = _Analysis(manifest, result, reading.broken)
        analysis.run(known)
        if import_check and result.ok:
            analysis._import_check()
    order = {"error": 0, "warning": 1, "info": 2}
    result.findings = sorted(
        _quoted(result.findings), key=lambda f: (order[f.severity], f.file or "", f.line or 0)
    )
    return result


def validate_plugins(
    paths: Sequence[Path],
    *,
    known: Sequence[PluginManifest],
    import_check: bool = True,
    plugin_dirs: Sequence[Path] | None = None,
) -> list[ValidationResult]:
    """Analyze each plugin of ``paths`` as :func:`validate_plugin` does, the plugins given
    being ones a host would load together: each is checked beside ``known`` and the
    others given (a dependency another provides is met; a conflict between them is an
    error, as is a version of an id given beside another, which a host would not take, and
    a copy of one given before it, of one of ``plugin_dirs`` (the plugins directories
    ``known`` was found in, in order, named in the message; not told, it names the two
    paths and no directory) or of one installed as a package), all resolved together
    once; each manifest is read once."""
    # each manifest read once, for the resolution together and for its own checks
    readings = {p: read_manifest(Path(p)) for p in paths if Path(p).suffix != ".whl"}
    together = with_given(known, readings.values())
    results = [
        validate_plugin(p, known=together, import_check=import_check, reading=readings.get(p))
        for p in paths
    ]
    check_given_twice(results, together, plugin_dirs)
    for result in results:
        result.findings = _quoted(result.findings)  # a finding added above, with its line
    return results


def _check_id_form(manifest: PluginManifest, result: ValidationResult) -> None:
    """A valid id without a dot (``formatter``) is a warning: ``plugbay new`` refuses one
    and another author's plugin of the same name would collide with it, but the host
    still loads it (plugins installed before the rule keep working)."""
    if is_dotted_id(manifest.id):
        return
    context = _Context(manifest, result)
    context.add(
        "warning",
        "id",
        f"the plugin id '{manifest.id}' has no dot: a plugin id names its owner, then the plugin",
        context.in_manifest(("id",)),
        f'write id = "acme.{manifest.id}" with your organisation (or your name) for '
        f"'acme'{' (and its entry point name to match)' if context.table else ''}; ids "
        "look like 'system.logging' or 'acme.csv-export'. The host still loads "
        f"'{manifest.id}', but a plugin of another author named so would collide with it",
    )


def _validate_wasm(
    manifest: PluginManifest, result: ValidationResult, *, import_check: bool
) -> None:
    from plugbay.pdk.wasm_build import check_wasm_plugin

    result.findings += check_wasm_plugin(manifest, load=import_check)
    if result.ok:
        result.commands = [s.describe() for _, s in sorted(manifest.wasm.specs().items())]


def _quoted(findings: list[Finding]) -> list[Finding]:
    """The findings, each with the text of its line when it names one (each file read
    once)."""
    texts: dict[str, list[str]] = {}
    quoted: list[Finding] = []
    for f in findings:
        if f.source is None and f.file is not None and f.line:
            if f.file not in texts:
                texts[f.file] = source_lines(f.file)
            lines = texts[f.file]
            text = lines[f.line - 1].strip() if f.line <= len(lines) else ""
            f = dataclasses.replace(f, source=text or None)
        quoted.append(f)
    return quoted


def _manifest_finding(exc: PlugbayError, path: Path) -> Finding:
    file, line = _split_where(exc.where, path)
    if line is None:
        line = _line_of_key(Path(file), exc.message)
    return Finding("error", "manifest", exc.message, file, line, exc.hint)


def _validate_wheel(
    wheel: Path, *, known: Sequence[PluginManifest] | None, import_check: bool
) -> ValidationResult:
    """A wheel: what ``plugbay install`` checks (a plugin entry point, RECORD hashes, the
    manifest), then every check of a plugin directory on the code as it would be installed."""
    from plugbay.pdk.wheels import inspect_wheel, unpack_plugin_wheel

    result = ValidationResult(wheel)
    try:
        inspect_wheel(wheel)
        with tempfile.TemporaryDirectory(prefix="plugbay-validate-") as tmp:
            inner = validate_plugin(
                unpack_plugin_wheel(wheel, Path(tmp)), known=known, import_check=import_check
            )
    except PlugbayError as exc:
        result.findings.append(Finding("error", "wheel", exc.message, str(wheel), None, exc.hint))
        return result
    tmp_prefix = str(Path(tmp))
    findings = [  # the unpacked copy is gone: name the file inside the wheel
        dataclasses.replace(f, file=f"{wheel}!{f.file[len(tmp_prefix) + 1 :]}")
        if f.file and f.file.startswith(tmp_prefix)
        else f
        for f in inner.findings
    ]
    result.manifest, result.findings = inner.manifest, findings
    result.commands, result.files = inner.commands, inner.files
    return result


def _split_where(where: str | None, default: Path) -> tuple[str, int | None]:
    if not where:
        return str(default), None
    m = re.match(r"^(.*?):(\d+)$", where)
    if m:
        return m.group(1), int(m.group(2))
    return where, None


def _line_of_key(file: Path, message: str) -> int | None:
    """The line of the config key or field a manifest error names, when it names one."""
    m = re.search(r"config key '([^']+)'|field '([^']+)'", message)
    if m is None or not file.is_file():
        return None
    key = (m.group(1) or m.group(2)).rsplit(".", 1)[-1]
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    pattern = rf'^[ \t]*\[[^\]]*\b{re.escape(key)}"?\]|^[ \t]*"?{re.escape(key)}"?[ \t]*='
    found = re.search(pattern, text, re.M)
    return text.count("\n", 0, found.start()) + 1 if found else None


class _Analysis(
    _InterfaceChecks,
    _PermissionChecks,
    _ImportChecks,
    _RequirementChecks,
    _ConfigChecks,
    _DependencyChecks,
    _EventChecks,
    _ProjectChecks,
    _ImportCheck,
):
    """One plugin's analysis: every check, run in the order findings read best; a check
    that reads a key of the manifest with a problem of its own does not run."""

    def run(self, known: Sequence[PluginManifest] | None) -> None:
        self._parse_modules()
        chain = None
        if not self.is_broken(*_ENTRY_KEYS):
            cls = self._entry_class()
            if cls is not None:
                self._check_class(*cls)
                chain = self._class_chain(*cls)
        if not self.is_broken("permissions"):
            self._check_permissions()
        if not self.is_broken(*_ENTRY_KEYS):
            self._check_imports()
        if not self.is_broken("python-dependencies"):
            self._check_python_requirements()
        self._check_config_use()
        if not self.is_broken("events"):
            self._check_event_use(chain)
        self._check_project()
        if not self.is_broken(*_ENTRY_KEYS, *_DEPENDENCY_KEYS):
            self._check_range_spellings()
            if known is not None:
                self._check_dependencies(known)


#: what the entry class is checked against
_ENTRY_KEYS: Collection[str] = ("id", "version", "type", "entry")
_DEPENDENCY_KEYS: Collection[str] = ("host", "dependencies", "optional-dependencies", "services")
