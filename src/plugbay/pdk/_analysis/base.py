"""What every check shares: findings, the parsed modules of the plugin, and a
few readings of the AST."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from plugbay.model._toml_lines import key_line
from plugbay.model.manifest import PluginManifest

Severity: TypeAlias = Literal["error", "warning", "info"]


_SKIP_DIRS: Final = frozenset(
    {"__pycache__", "build", "dist", "tests", "test", "docs", "node_modules", "venv"}
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the analyzer noticed: where, how bad, and what to do."""

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None
    #: the text of that line, when the finding is about what it says
    source: str | None = None

    def location(self) -> str:
        if self.file is None:
            return "-"
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "hint": self.hint,
            "source": self.source,
        }


@dataclass(slots=True)
class ValidationResult:
    """What ``validate_plugin`` found: the spec's ``ValidationResult``."""

    path: Path
    manifest: PluginManifest | None = None
    findings: list[Finding] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "ok": self.ok,
            "path": str(self.path),
            "plugin": m.id if m else None,
            "version": str(m.version) if m else None,
            "type": m.type if m else None,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
            "commands": self.commands,
        }


def _host_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("plugbay")


@dataclass(slots=True)
class _Module:
    name: str  # dotted, relative to the plugin root
    path: Path
    tree: ast.Module
    # local name -> (module, attribute or None): 'from x import y as z' gives z -> (x, y)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    aliases: dict[str, ast.expr] = field(default_factory=dict)
    nodes: list[ast.AST] = field(default_factory=list)  # every node, walked once

    def index(self) -> None:
        """Fill in its classes, type aliases, imports and nodes from the tree."""
        for statement in self.tree.body:
            self._index_definition(statement)
        self.nodes = list(ast.walk(self.tree))
        for node in self.nodes:
            self._index_import(node)

    def _index_definition(self, node: ast.stmt) -> None:
        if isinstance(node, ast.ClassDef):
            self.classes[node.name] = node
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                self.aliases[target.id] = node.value
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
            and _is_type_alias_annotation(node.annotation)
        ):
            self.aliases[node.target.id] = node.value

    def _index_import(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                imported = alias.name if alias.asname else alias.name.split(".")[0]
                self.imports[local] = (imported, None)
        elif isinstance(node, ast.ImportFrom):
            source_module = self.absolute(node.module, node.level)
            for alias in node.names:
                self.imports[alias.asname or alias.name] = (source_module, alias.name)

    def absolute(self, module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        package = self.name.split(".")
        if self.path.name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - (level - 1)] if level > 1 else package
        return ".".join([*base, *([module] if module else [])])


def source_lines(file: str | Path) -> list[str]:
    """The lines of ``file`` (none when it cannot be read as text)."""
    try:
        with open(file, encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def _python_files(root: Path) -> Iterator[Path]:
    for path in root.iterdir():
        if path.name.startswith("."):
            continue
        if path.is_dir():
            if path.name in _SKIP_DIRS or path.name.endswith(".egg-info"):
                continue
            yield from _python_files(path)
        elif path.suffix == ".py":
            yield path


def _dotted(expr: ast.expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return f"{_dotted(expr.value)}.{expr.attr}"
    if isinstance(expr, ast.Call):
        return _dotted(expr.func)
    return ""


def _target_name(expr: ast.expr) -> str:
    return expr.id if isinstance(expr, ast.Name) else ast.unparse(expr)


def _is_type_alias_annotation(annotation: ast.expr) -> bool:
    return _dotted(annotation).split(".")[-1] == "TypeAlias"


def _is_command(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(_dotted(d).split(".")[-1] == "command" for d in fn.decorator_list)


def _command_name(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and _dotted(d).split(".")[-1] == "command":
            for kw in d.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
    return fn.name


class _Context:
    """The plugin under analysis, where findings go, and its modules once parsed.

    ``broken`` names the manifest's keys (paths in its table) that have a problem of
    their own, already a finding: a check that reads one of them does not run.
    """

    def __init__(
        self,
        manifest: PluginManifest,
        result: ValidationResult,
        broken: Iterable[tuple[str, ...]] = (),
    ) -> None:
        self.m = manifest
        self.result = result
        self.broken = frozenset(broken)
        self.root = manifest.root or (manifest.path.parent if manifest.path else Path("."))
        self.manifest_file = str(manifest.path) if manifest.path else manifest.location
        self.manifest_text = ""
        if manifest.path is not None:
            try:
                self.manifest_text = manifest.path.read_text(encoding="utf-8")
            except OSError:
                self.manifest_text = ""
        in_pyproject = manifest.path is not None and manifest.path.name == "pyproject.toml"
        #: where the manifest's keys are in its file
        self.table: tuple[str, ...] = ("tool", "plugbay") if in_pyproject else ()
        self.modules: dict[str, _Module] = {}
        #: top-level modules an import-time import names that cannot be found (said once)
        self.unimportable: set[str] = set()

    def is_broken(self, *keys: str) -> bool:
        """Whether a manifest key under any of ``keys`` (top-level names) has a problem."""
        return any(path[0] in keys for path in self.broken)

    # -- findings ------------------------------------------------------------------

    def add(
        self,
        severity: Severity,
        code: str,
        message: str,
        where: tuple[Path | str, int | None] | None = None,
        hint: str | None = None,
    ) -> None:
        file, line = (str(where[0]), where[1]) if where else (None, None)
        self.result.findings.append(Finding(severity, code, message, file, line, hint))

    def in_manifest(self, key: str | tuple[str, ...]) -> tuple[str, int | None]:
        """The manifest file and the line that sets ``key``: a path in the manifest's
        table (that key, else its nearest enclosing one), or a name (the first line that
        sets a key of that name)."""
        text = self.manifest_text
        if not text:
            return self.manifest_file, None
        if isinstance(key, tuple):
            return self.manifest_file, key_line(text, (*self.table, *key))
        pattern = re.compile(
            rf'^[ \t]*"?{re.escape(key)}"?[ \t]*=|^[ \t]*\[[^\]]*\b{re.escape(key)}"?\]', re.M
        )
        m = pattern.search(text) or re.search(rf'[{{,]\s*"?{re.escape(key)}"?\s*=', text)
        return self.manifest_file, (text.count("\n", 0, m.start()) + 1) if m else None

    def _parse_modules(self) -> None:
        for path in sorted(_python_files(self.root)):
            module = self._read_module(path)
            if module is None:
                continue
            self.result.files.append(path)
            module.index()
            self.modules[module.name] = module

    def _read_module(self, path: Path) -> _Module | None:
        """The module at ``path`` parsed, or None (and a finding) when it cannot be."""
        rel = path.relative_to(self.root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source, filename=str(path))
        except SyntaxError as exc:
            self.result.findings.append(
                Finding(
                    "error",
                    "syntax",
                    f"syntax error: {exc.msg}",
                    str(path),
                    exc.lineno,
                    "fix the syntax; the host cannot import this module",
                    (exc.text or "").strip() or None,
                )
            )
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.add("error", "syntax", f"cannot read the module: {exc}", (path, None))
            return None
        return _Module(".".join(parts), path, tree)
