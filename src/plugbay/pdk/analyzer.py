"""The analyzer behind ``plugbay validate``: the spec's ``DevTools.analyzer``.

It reads a plugin without running it: the manifest, then every module of the
plugin parsed with :mod:`ast` (never imported), and reports findings, each with
a file, a line, a severity and a fix:

* the manifest parses and its config defaults satisfy their schema;
* the entry module and class exist, the class derives from its type's base
  class, and every interface method it overrides keeps the interface's
  signature (``async`` or not, the parameters);
* every ``@command`` has named, annotated parameters and a return annotation,
  built only of types the call boundary can check and carry across a process;
* the code reads only config keys the schema declares;
* dependency, optional-dependency and service ranges can be met by the plugins
  the host knows, and the host's version is in the plugin's ``host`` range;
* what the code imports and calls matches the permissions it asks for (a plugin
  that imports ``socket`` but asks for no network is warned, naming the line).

Only then, when nothing above is an error and ``import_check`` is on, is the
entry class imported into a throwaway namespace (as the host would) to catch
what only an import shows: an exception at module level, an annotation that
does not resolve.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.metadata
import inspect
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from plugbay.api import ExtensionPlugin, IntegrationPlugin, Plugin, SystemPlugin, UtilityPlugin
from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import PluginManifest, load_manifest

__all__ = ["Finding", "Severity", "ValidationResult", "known_plugins", "validate_plugin"]

Severity: TypeAlias = Literal["error", "warning", "info"]

_BASES: Final[dict[str, type[Plugin]]] = {
    "Plugin": Plugin,
    "SystemPlugin": SystemPlugin,
    "IntegrationPlugin": IntegrationPlugin,
    "ExtensionPlugin": ExtensionPlugin,
    "UtilityPlugin": UtilityPlugin,
}
_FOR_TYPE: Final = {
    "system": "SystemPlugin",
    "integration": "IntegrationPlugin",
    "extension": "ExtensionPlugin",
    "utility": "UtilityPlugin",
}
_SKIP_DIRS: Final = frozenset(
    {"__pycache__", "build", "dist", "tests", "test", "docs", "node_modules", "venv"}
)

# what needs which permission: modules imported, and calls made
_NETWORK_MODULES: Final = frozenset(
    {
        "socket", "ssl", "http.client", "http.server", "urllib.request", "ftplib", "smtplib",
        "poplib", "imaplib", "telnetlib", "xmlrpc.client", "socketserver", "requests", "httpx",
        "aiohttp", "urllib3", "websockets", "grpc", "paramiko",
    }
)  # fmt: skip
_NETWORK_CALLS: Final = frozenset(
    {
        "asyncio.open_connection", "asyncio.start_server", "asyncio.open_unix_connection",
        "asyncio.start_unix_server", "create_connection", "create_server",
        "create_datagram_endpoint", "sock_connect",
    }
)  # fmt: skip
_SUBPROCESS_MODULES: Final = frozenset({"subprocess", "multiprocessing", "pty", "pexpect", "sh"})
_SUBPROCESS_CALLS: Final = frozenset(
    {
        "os.system", "os.popen", "os.fork", "os.forkpty", "os.execv", "os.execve", "os.execvp",
        "os.execvpe", "os.execl", "os.execle", "os.execlp", "os.execlpe", "os.spawnl",
        "os.spawnv", "os.spawnve", "os.spawnvp", "os.posix_spawn", "os.posix_spawnp",
        "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell",
        "subprocess_exec", "subprocess_shell",
    }
)  # fmt: skip

# names an annotation may use without importing them
_BUILTIN_TYPES: Final = frozenset(
    {"str", "int", "float", "bool", "bytes", "bytearray", "list", "dict", "set", "frozenset",
     "tuple", "None", "memoryview", "object"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the analyzer noticed: where, how bad, and what to do."""

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None

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


# --------------------------------------------------------------------------- the plugins a host knows


def known_plugins(
    plugin_dirs: Iterable[Path] = (), *, entry_points: bool = True
) -> list[PluginManifest]:
    """Every manifest a host on ``plugin_dirs`` would see (problems are skipped)."""
    from plugbay.model.discover import discover

    return discover(
        [d for d in plugin_dirs if Path(d).is_dir()], entry_points=entry_points
    ).manifests


# --------------------------------------------------------------------------- entry point


def validate_plugin(
    path: Path,
    *,
    known: Sequence[PluginManifest] | None = None,
    import_check: bool = True,
) -> ValidationResult:
    """Analyze the plugin at ``path`` (its directory, ``plugin.toml``, ``pyproject.toml``
    or a built wheel: checked as a host would install it, then like its directory).

    ``known`` is what the host knows (for dependencies and services); ``None``
    skips those checks. See the module docstring for what is checked.
    """
    if Path(path).suffix == ".whl":
        return _validate_wheel(Path(path), known=known, import_check=import_check)
    result = ValidationResult(Path(path))
    try:
        manifest = load_manifest(Path(path))
    except PlugbayError as exc:
        file, line = _split_where(exc.where, Path(path))
        if line is None:
            line = _line_of_key(Path(file), exc.message)
        result.findings.append(Finding("error", "manifest", exc.message, file, line, exc.hint))
        return result
    result.manifest = manifest
    _Analysis(manifest, result).run(known)
    if import_check and result.ok:
        _import_check(manifest, result)
    order = {"error": 0, "warning": 1, "info": 2}
    result.findings.sort(key=lambda f: (order[f.severity], f.file or "", f.line or 0))
    return result


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


def _requirements_key(manifest_text: str) -> str:
    return "dependencies" if "python-dependencies" not in manifest_text else "python-dependencies"


def _host_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("plugbay")


@cache
def _host_distributions() -> dict[str, list[str]]:
    """Top-level module → the distributions that provide it, in the host's environment."""
    import importlib.metadata

    return dict(importlib.metadata.packages_distributions())


def _import_check(manifest: PluginManifest, result: ValidationResult) -> None:
    from plugbay.isolation.loading import import_plugin, unload_code

    try:
        code = import_plugin(manifest)
    except PlugbayError as exc:
        file, line = _split_where(exc.where, Path(manifest.location))
        if manifest.python_dependencies and "no module named" in exc.message.lower():
            # its libraries live in the environment the host builds for it, not here
            result.findings.append(
                Finding(
                    "info",
                    "import",
                    f"not imported here ({exc.message}): it runs with its own Python "
                    "environment, which the host builds at install",
                    file,
                    line,
                    "install its requirements here to check the import too",
                )
            )
            return
        result.findings.append(Finding("error", "import", exc.message, file, line, exc.hint))
        return
    if code.namespace:
        unload_code(code.namespace)
    result.commands = [spec.describe() for _, spec in sorted(code.commands.items())]


# --------------------------------------------------------------------------- modules


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

    def absolute(self, module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        package = self.name.split(".")
        if self.path.name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - (level - 1)] if level > 1 else package
        return ".".join([*base, *([module] if module else [])])


class _Analysis:
    def __init__(self, manifest: PluginManifest, result: ValidationResult) -> None:
        self.m = manifest
        self.result = result
        self.root = manifest.root or (manifest.path.parent if manifest.path else Path("."))
        self.manifest_file = str(manifest.path) if manifest.path else manifest.location
        self.manifest_text = ""
        if manifest.path is not None:
            try:
                self.manifest_text = manifest.path.read_text(encoding="utf-8")
            except OSError:
                self.manifest_text = ""
        self.modules: dict[str, _Module] = {}

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

    def in_manifest(self, key: str) -> tuple[str, int | None]:
        """The manifest file and the first line that sets ``key``."""
        text = self.manifest_text
        if not text:
            return self.manifest_file, None
        pattern = re.compile(
            rf'^[ \t]*"?{re.escape(key)}"?[ \t]*=|^[ \t]*\[[^\]]*\b{re.escape(key)}"?\]', re.M
        )
        m = pattern.search(text) or re.search(rf'[{{,]\s*"?{re.escape(key)}"?\s*=', text)
        return self.manifest_file, (text.count("\n", 0, m.start()) + 1) if m else None

    # -- the run -------------------------------------------------------------------

    def run(self, known: Sequence[PluginManifest] | None) -> None:
        self._parse_modules()
        cls = self._entry_class()
        if cls is not None:
            module, node = cls
            self._check_class(module, node)
        self._check_permissions()
        self._check_python_requirements()
        self._check_config_use()
        self._check_range_spellings()
        if known is not None:
            self._check_dependencies(known)

    def _parse_modules(self) -> None:
        for path in sorted(_python_files(self.root)):
            rel = path.relative_to(self.root).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            try:
                source = path.read_text(encoding="utf-8")
                tree = ast.parse(source, filename=str(path))
            except SyntaxError as exc:
                self.add(
                    "error",
                    "syntax",
                    f"syntax error: {exc.msg}",
                    (path, exc.lineno),
                    "fix the syntax; the host cannot import this module",
                )
                continue
            except (OSError, UnicodeDecodeError) as exc:
                self.add("error", "syntax", f"cannot read the module: {exc}", (path, None))
                continue
            self.result.files.append(path)
            module = _Module(name, path, tree)
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    module.classes[node.name] = node
                elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    if isinstance(target, ast.Name):
                        module.aliases[target.id] = node.value
                elif (
                    isinstance(node, ast.AnnAssign)
                    and isinstance(node.target, ast.Name)
                    and node.value is not None
                    and _is_type_alias_annotation(node.annotation)
                ):
                    module.aliases[node.target.id] = node.value
            module.nodes = list(ast.walk(tree))
            for any_node in module.nodes:
                if isinstance(any_node, ast.Import):
                    for alias in any_node.names:
                        local = alias.asname or alias.name.split(".")[0]
                        imported = alias.name if alias.asname else alias.name.split(".")[0]
                        module.imports[local] = (imported, None)
                elif isinstance(any_node, ast.ImportFrom):
                    source_module = module.absolute(any_node.module, any_node.level)
                    for alias in any_node.names:
                        module.imports[alias.asname or alias.name] = (source_module, alias.name)
            self.modules[name] = module

    def _entry_class(self) -> tuple[_Module, ast.ClassDef] | None:
        m = self.m
        module = self.modules.get(m.module)
        if module is None:
            expected = self.root / (m.module.replace(".", "/") + ".py")
            if not any(f.severity == "error" and f.code == "syntax" for f in self.result.findings):
                self.add(
                    "error",
                    "entry",
                    f"entry module '{m.module}' does not exist",
                    self.in_manifest("entry"),
                    f"create {expected}, or fix entry in the manifest",
                )
            return None
        name = m.attribute.split(".")[0]
        node = module.classes.get(name)
        if node is None:
            plugin_classes = [
                c.name for c in module.classes.values() if self._plugbay_base(module, c) is not None
            ]
            self.add(
                "error",
                "entry",
                f"module '{m.module}' defines no class '{m.attribute}'",
                self.in_manifest("entry"),
                f"plugin classes there: {', '.join(plugin_classes) or 'none'}; fix entry",
            )
            return None
        return module, node

    # -- the class -----------------------------------------------------------------

    def _resolve_class(self, module: _Module, expr: ast.expr) -> tuple[str, Any] | None:
        """Where a class expression leads: ("local", (module, ClassDef)), ("plugbay", name),
        ("external", object) or None when it cannot be told statically."""
        if isinstance(expr, ast.Subscript):
            expr = expr.value
        if isinstance(expr, ast.Name):
            if expr.id in module.classes:
                return "local", (module, module.classes[expr.id])
            imported = module.imports.get(expr.id)
            if imported is None:
                return None
            source, attr = imported
            if attr is None:
                return None
            if source in self.modules:
                target = self.modules[source]
                if attr in target.classes:
                    return "local", (target, target.classes[attr])
                return self._resolve_class(target, ast.Name(attr))
            if source in ("plugbay", "plugbay.api") and attr in _BASES:
                return "plugbay", attr
            return "external", _external(source, attr)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            imported = module.imports.get(expr.value.id)
            if imported is not None and imported[1] is None:
                source = imported[0]
                if source in ("plugbay", "plugbay.api") and expr.attr in _BASES:
                    return "plugbay", expr.attr
                return "external", _external(source, expr.attr)
        return None

    def _plugbay_base(
        self, module: _Module, node: ast.ClassDef, seen: frozenset[int] = frozenset()
    ) -> str | None:
        if id(node) in seen:
            return None
        for base in node.bases:
            found = self._resolve_class(module, base)
            if found is None:
                continue
            kind, value = found
            if kind == "plugbay":
                return str(value)
            if kind == "local":
                inner = self._plugbay_base(value[0], value[1], seen | {id(node)})
                if inner is not None:
                    return inner
            if kind == "external" and isinstance(value, type) and issubclass(value, Plugin):
                for name, cls in _BASES.items():
                    if issubclass(value, cls) and cls is not Plugin:
                        return name
                return "Plugin"
        return None

    def _class_chain(
        self, module: _Module, node: ast.ClassDef
    ) -> list[tuple[_Module, ast.ClassDef]]:
        """The class and its local bases, nearest first (what the plugin itself defines)."""
        chain: list[tuple[_Module, ast.ClassDef]] = []
        todo = [(module, node)]
        while todo:
            mod, cls = todo.pop(0)
            if any(c is cls for _, c in chain):
                continue
            chain.append((mod, cls))
            for base in cls.bases:
                found = self._resolve_class(mod, base)
                if found is not None and found[0] == "local":
                    todo.append(found[1])
        return chain

    def _check_class(self, module: _Module, node: ast.ClassDef) -> None:
        m = self.m
        where = (module.path, node.lineno)
        expected = _FOR_TYPE[m.type]
        base = self._plugbay_base(module, node)
        if base is None:
            self.add(
                "error",
                "interface",
                f"{node.name} does not derive from a plugbay plugin class",
                where,
                f"subclass plugbay.{expected} (the manifest says type '{m.type}')",
            )
            return
        base_cls = _BASES[base]
        if base != expected and not issubclass(base_cls, _BASES[expected]):
            self.add(
                "error",
                "interface",
                f"the manifest says type '{m.type}' but {node.name} is a {base}",
                where,
                f"subclass plugbay.{expected}, or change type in the manifest",
            )
            base_cls = _BASES[expected]
        chain = self._class_chain(module, node)
        methods: dict[str, tuple[_Module, ast.FunctionDef | ast.AsyncFunctionDef]] = {}
        for mod, cls in reversed(chain):
            for item in cls.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    methods[item.name] = (mod, item)
            for item in cls.body:
                self._check_identity(mod, item)
        interface = _interface(base_cls)
        for name, (is_async, params, abstract) in interface.items():
            if name not in methods:
                if abstract:
                    self.add(
                        "error",
                        "interface",
                        f"{node.name} does not implement {name}(), which every "
                        f"{base_cls.__name__} must have",
                        where,
                        f"add {'async ' if is_async else ''}def {name}(self"
                        + "".join(f", {p}" for p in params)
                        + ")",
                    )
                continue
            mod, fn = methods[name]
            if _is_command(fn):
                continue
            self._check_signature(mod, fn, base_cls.__name__, is_async, params)
        for state_hook in ("export_state", "import_state"):
            if state_hook in methods and _is_command(methods[state_hook][1]):
                self.add(
                    "warning",
                    "interface",
                    f"{state_hook} is a command; the host calls it directly on reload",
                    (methods[state_hook][0].path, methods[state_hook][1].lineno),
                    "drop @command from it",
                )
        for _name, (mod, fn) in sorted(methods.items()):
            if _is_command(fn):
                self._check_command(mod, fn)

    def _check_identity(self, module: _Module, item: ast.stmt) -> None:
        if not isinstance(item, (ast.Assign, ast.AnnAssign)):
            return
        targets = item.targets if isinstance(item, ast.Assign) else [item.target]
        value = item.value
        for target in targets:
            if (
                isinstance(target, ast.Name)
                and target.id in ("id", "version")
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                declared = str(getattr(self.m, target.id))
                if value.value != declared:
                    self.add(
                        "error",
                        "interface",
                        f"the class says {target.id} = '{value.value}' but the manifest says "
                        f"'{declared}'",
                        (module.path, item.lineno),
                        f"make them agree, or drop {target.id} from the class (the manifest is "
                        "the source of truth)",
                    )

    def _check_signature(
        self,
        module: _Module,
        fn: ast.FunctionDef | ast.AsyncFunctionDef,
        base: str,
        is_async: bool,
        params: tuple[str, ...],
    ) -> None:
        where = (module.path, fn.lineno)
        if isinstance(fn, ast.AsyncFunctionDef) != is_async:
            want = "async def" if is_async else "def"
            self.add(
                "error",
                "interface",
                f"{fn.name} must be '{want}' as in {base}, not "
                f"'{'async def' if isinstance(fn, ast.AsyncFunctionDef) else 'def'}'",
                where,
                f"write {want} {fn.name}(self" + "".join(f", {p}" for p in params) + ")",
            )
        args = fn.args
        if args.vararg is not None or args.kwarg is not None:
            return  # *args/**kwargs accept whatever the host passes
        positional = [a.arg for a in [*args.posonlyargs, *args.args]][1:]
        required = len(positional) - len(args.defaults)
        if len(positional) < len(params) or required > len(params):
            self.add(
                "error",
                "interface",
                f"{fn.name}({', '.join(positional)}) does not match {base}.{fn.name}"
                f"({', '.join(params)}): the host calls it with "
                f"{len(params)} argument{'s' if len(params) != 1 else ''}",
                where,
                f"write {'async ' if is_async else ''}def {fn.name}(self"
                + "".join(f", {p}" for p in params)
                + ")",
            )

    # -- commands ------------------------------------------------------------------

    def _check_command(self, module: _Module, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = fn.args
        name = _command_name(fn)
        for bad, kind in (
            (args.vararg, "*"),
            (args.kwarg, "**"),
            *((a, "positional-only") for a in args.posonlyargs[1:]),
        ):
            if bad is not None:
                self.add(
                    "error",
                    "command",
                    f"command '{name}' has parameter {kind if kind != 'positional-only' else ''}"
                    f"{bad.arg}" + (" (positional-only)" if kind == "positional-only" else ""),
                    (module.path, bad.lineno),
                    "commands take named parameters only: drop *args, **kwargs and '/'",
                )
        params = [*args.posonlyargs, *args.args][1:] + list(args.kwonlyargs)
        for arg in params:
            if arg.annotation is None:
                self.add(
                    "error",
                    "command",
                    f"command '{name}' parameter '{arg.arg}' has no type annotation",
                    (module.path, arg.lineno),
                    f"annotate it, e.g. '{arg.arg}: str', so calls can be checked",
                )
            else:
                self._check_boundary(
                    module, arg.annotation, f"command '{name}' parameter '{arg.arg}'"
                )
        if fn.returns is None:
            self.add(
                "error",
                "command",
                f"command '{name}' has no return annotation",
                (module.path, fn.lineno),
                "annotate the return type ('-> None' if it returns nothing)",
            )
        else:
            self._check_boundary(module, fn.returns, f"command '{name}' result")

    def _check_boundary(self, module: _Module, annotation: ast.expr, what: str) -> None:
        for node, problem in self._unchecked_types(module, annotation, set()):
            self.add(
                "error" if problem[0] == "error" else "warning",
                "command-type",
                f"{what}: {problem[1]}",
                (module.path, getattr(node, "lineno", None)),
                problem[2],
            )

    def _unchecked_types(
        self, module: _Module, expr: ast.expr, seen: set[int]
    ) -> Iterator[tuple[ast.expr, tuple[str, str, str]]]:
        """Parts of an annotation the call boundary cannot check, with why and a fix."""
        if isinstance(expr, ast.Constant):
            if isinstance(expr.value, str):  # a string annotation: parse it
                try:
                    inner = ast.parse(expr.value, mode="eval").body
                except SyntaxError:
                    yield expr, ("error", f"'{expr.value}' is not a type", "fix the annotation")
                    return
                ast.copy_location(inner, expr)
                for sub in ast.walk(inner):
                    ast.copy_location(sub, expr)
                yield from self._unchecked_types(module, inner, seen)
            return  # None, Ellipsis, Literal values
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
            yield from self._unchecked_types(module, expr.left, seen)
            yield from self._unchecked_types(module, expr.right, seen)
            return
        if isinstance(expr, ast.Subscript):
            yield from self._unchecked_types(module, expr.value, seen)
            head = _dotted(expr.value)
            if head.split(".")[-1] == "Literal":
                return
            elements = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
            if head.split(".")[-1] == "Annotated":
                elements = elements[:1]
            for element in elements:
                yield from self._unchecked_types(module, element, seen)
            return
        if isinstance(expr, (ast.Tuple, ast.List)):
            for element in expr.elts:
                yield from self._unchecked_types(module, element, seen)
            return
        if isinstance(expr, ast.Name):
            name = expr.id
            if name in module.classes:
                yield from self._check_local_type(module, module.classes[name], expr, seen)
                return
            if name in module.aliases:
                if id(module.aliases[name]) not in seen:
                    seen.add(id(module.aliases[name]))
                    value = module.aliases[name]
                    for _node, problem in self._unchecked_types(module, value, seen):
                        yield expr, problem
                return
            imported = module.imports.get(name)
            if imported is not None:
                source, attr = imported
                if source in self.modules and attr is not None:
                    target = self.modules[source]
                    yield from (
                        (expr, problem)
                        for _, problem in self._unchecked_types(target, ast.Name(attr), seen)
                    )
                    return
                if attr is not None:
                    yield from self._check_external(source, attr, expr)
                return
            if name in _BUILTIN_TYPES:
                return
            yield (
                expr,
                (
                    "error",
                    f"'{name}' is not defined or imported",
                    f"import {name}, or use a type the boundary knows",
                ),
            )
            return
        if isinstance(expr, ast.Attribute):
            dotted = _dotted(expr)
            head, _, attr = dotted.rpartition(".")
            imported = module.imports.get(head.split(".")[0])
            if imported is not None and imported[1] is None:
                source = imported[0] + head[len(head.split(".")[0]) :]
                yield from self._check_external(source, attr, expr)
            return

    def _check_local_type(
        self, module: _Module, node: ast.ClassDef, expr: ast.expr, seen: set[int]
    ) -> Iterator[tuple[ast.expr, tuple[str, str, str]]]:
        if id(node) in seen:
            return
        seen.add(id(node))
        decorators = {
            _dotted(d.func if isinstance(d, ast.Call) else d).split(".")[-1]
            for d in node.decorator_list
        }
        bases = {
            _dotted(b.value if isinstance(b, ast.Subscript) else b).split(".")[-1]
            for b in node.bases
        }
        data_like = "dataclass" in decorators or "define" in decorators or "frozen" in decorators
        structured = data_like or bool(bases & {"TypedDict", "NamedTuple", "Struct"})
        enum = bool(bases & {"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"})
        if not (structured or enum):
            yield (
                expr,
                (
                    "error",
                    f"{node.name} cannot cross a process or JSON boundary, so calls cannot be checked",
                    f"make {node.name} a @dataclass, TypedDict, NamedTuple, Enum or msgspec.Struct "
                    f"(line {node.lineno})",
                ),
            )
            return
        if structured:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and not _dotted(item.annotation).endswith(
                    "ClassVar"
                ):
                    for _, problem in self._unchecked_types(module, item.annotation, seen):
                        yield (
                            expr,
                            (
                                problem[0],
                                f"field '{_target_name(item.target)}' of {node.name}: {problem[1]}",
                                problem[2],
                            ),
                        )

    def _check_external(
        self, source: str, attr: str, expr: ast.expr
    ) -> Iterator[tuple[ast.expr, tuple[str, str, str]]]:
        obj = _external(source, attr)
        if obj is _UNKNOWN:
            yield (
                expr,
                (
                    "warning",
                    f"cannot check {source}.{attr}: {source} is not importable here",
                    f"install {source.split('.')[0]} where you validate, or use builtin types",
                ),
            )
            return
        problem = _boundary_problem(obj)
        if problem:
            yield expr, ("error", f"{source}.{attr} {problem}", _BOUNDARY_HINT)

    # -- permissions -----------------------------------------------------------------

    def _check_python_requirements(self) -> None:
        """Each requirement is one uv can install here, and each import of a third-party
        module is covered by one (else it fails at load: 'no module named …')."""
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
        own = {name.split(".")[0] for name in self.modules}
        own |= {p.stem for p in self.root.iterdir()} if self.root.is_dir() else set()
        provided = _host_distributions()
        warned: set[str] = set()
        for module in self.modules.values():
            for node in module.nodes:
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module.split(".")[0]]
                for top in names:
                    if top in warned or top in own or top in ("plugbay", "__future__"):
                        continue
                    if top in sys.stdlib_module_names:
                        continue
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

    def _check_permissions(self) -> None:
        perms = self.m.permissions
        seen: set[str] = set()
        for module in self.modules.values():
            for node, need, what in _uses(module):
                seen.add(need.partition(":")[0])
                if need == "network" and not perms.network:
                    self.add(
                        "warning",
                        "permission",
                        f"{what} but the manifest asks for no network permission",
                        (module.path, node.lineno),
                        'add network = ["HOST:PORT"] under [permissions] (the operator grants it); '
                        "in a sandbox, connections are refused without it",
                    )
                elif need == "subprocess" and not perms.subprocess:
                    self.add(
                        "warning",
                        "permission",
                        f"{what} but the manifest does not ask for subprocess",
                        (module.path, node.lineno),
                        "add subprocess = true under [permissions] (the operator grants it); "
                        "in a sandbox, starting a process fails without it",
                    )
                elif need.startswith("env"):
                    name = need.partition(":")[2]
                    if (name and name not in perms.env) or (not name and not perms.env):
                        self.add(
                            "warning",
                            "permission",
                            f"{what} but the manifest does not ask for "
                            + (f"env:{name}" if name else "any environment variable"),
                            (module.path, node.lineno),
                            f'add env = ["{name or "NAME"}"] under [permissions]; a sandboxed '
                            "plugin sees only granted variables",
                        )
        # least privilege: what it asks for but, as far as its code shows, never uses
        for asked, used, key in (
            (bool(perms.network), "network" in seen, "network"),
            (perms.subprocess, "subprocess" in seen, "subprocess"),
        ):
            if asked and not used:
                self.add(
                    "info",
                    "permission",
                    f"asks for {key} but no import or call in its code needs it",
                    self.in_manifest(key),
                    f"drop {key} from [permissions] unless a library it uses needs it",
                )

    # -- config ----------------------------------------------------------------------

    def _check_config_use(self) -> None:
        schema = self.m.config.fields if self.m.config else {}
        for module in self.modules.values():
            for node in module.nodes:
                key: str | None = None
                if (
                    isinstance(node, ast.Subscript)
                    and _dotted(node.value).split(".")[-1] == "config"
                    and isinstance(node.slice, ast.Constant)
                    and isinstance(node.slice.value, str)
                ):
                    key = node.slice.value
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get"
                    and _dotted(node.func.value).split(".")[-1] == "config"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    key = node.args[0].value
                if key is not None and key not in schema:
                    self.add(
                        "error",
                        "config",
                        f"the code reads config key '{key}', which the manifest's [config] "
                        "does not declare",
                        (module.path, getattr(node, "lineno", None)),
                        f"declare [config.{key}] with a type (and a default), or fix the key; "
                        f"declared: {', '.join(schema) or 'none'}",
                    )
        for name, spec in schema.items():
            if spec.required and not spec.has_default:
                self.add(
                    "info",
                    "config",
                    f"config key '{name}' is required and has no default: the host must set it",
                    self.in_manifest(name),
                    f'document it; operators set it under [plugins."{self.m.id}"] in plugbay.toml',
                )

    # -- dependencies and services ------------------------------------------------------

    def _check_range_spellings(self) -> None:
        """A range npm and PEP 440 read differently: say how plugbay reads it."""
        from plugbay.model.range_spelling import ambiguity

        m = self.m
        ranges = [("host", m.host)]
        ranges += [(dep, r) for dep, r in m.dependencies.items()]
        ranges += [(dep, r) for dep, r in m.optional_dependencies.items()]
        ranges += [(service, r) for service, r in m.requires.items()]
        for key, rng in ranges:
            found = ambiguity(rng.text)
            if found is not None:
                self.add("warning", "range", found.message, self.in_manifest(key), found.hint)

    def _check_dependencies(self, known: Sequence[PluginManifest]) -> None:
        from plugbay.model.versions import Version

        m = self.m
        host_version = Version.parse(_host_version())
        if host_version not in m.host:
            self.add(
                "error",
                "host",
                f"this host is plugbay {host_version}, outside the plugin's host range {m.host}",
                self.in_manifest("host"),
                f"widen host to include {host_version}",
            )
        others = [k for k in known if k.id != m.id]
        by_id: dict[str, list[PluginManifest]] = {}
        for k in others:
            by_id.setdefault(k.id, []).append(k)
        for optional, table in ((False, m.dependencies), (True, m.optional_dependencies)):
            for dep, rng in table.items():
                versions = sorted(k.version for k in by_id.get(dep, []))
                if not versions:
                    self.add(
                        "warning" if optional else "error",
                        "dependency",
                        f"{'optional ' if optional else ''}dependency '{dep}' is not a plugin the "
                        "host knows",
                        self.in_manifest(dep),
                        "install it, check the id, or point --plugins at where it is",
                    )
                elif not any(v in rng for v in versions):
                    self.add(
                        "warning" if optional else "error",
                        "dependency",
                        f"no known version of '{dep}' satisfies {rng} (known: "
                        f"{', '.join(str(v) for v in versions)})",
                        self.in_manifest(dep),
                        f"widen the range, or install a version of '{dep}' in {rng}",
                    )
        for service, rng in m.requires.items():
            providers = [(k.id, k.provides[service]) for k in others if service in k.provides]
            if not any(v in rng for _, v in providers):
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
        for service, version in m.provides.items():
            for k in others:
                if service in k.provides and k.provides[service] == version:
                    self.add(
                        "info",
                        "service",
                        f"'{k.id}' also provides service '{service}' {version}",
                        self.in_manifest(service),
                        "the host picks one provider; make sure that is intended",
                    )
        if not self.result.errors and (m.dependencies or m.requires):
            self._check_resolution(others)

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


# --------------------------------------------------------------------------- helpers


_UNKNOWN: Final = object()
_BOUNDARY_HINT: Final = (
    "use builtins, dataclasses, TypedDicts, enums, Literal, msgspec.Struct or containers of them"
)


@cache
def _external(source: str, attr: str) -> Any:
    """An object from a module outside the plugin (stdlib, plugbay, a library): importing
    those runs no plugin code. Unknown when it is not importable here."""
    try:
        module = importlib.import_module(source)
    except Exception:
        return _UNKNOWN
    return getattr(module, attr, _UNKNOWN)


@cache
def _boundary_problem(obj: Any) -> str | None:
    import msgspec

    from plugbay.api._command import _custom_types

    if not isinstance(obj, type) and not hasattr(obj, "__origin__"):
        return None  # typing special forms (Any, Optional...) and aliases
    try:
        custom = _custom_types(msgspec.inspect.type_info(obj))
    except (TypeError, ValueError) as exc:
        return f"cannot be checked at the call boundary ({exc})"
    if custom:
        return "cannot cross a process or JSON boundary, so calls cannot be checked"
    return None


@cache
def _interface(base: type[Plugin]) -> dict[str, tuple[bool, tuple[str, ...], bool]]:
    """name -> (async?, parameter names after self, abstract?) for the base's public methods."""
    out: dict[str, tuple[bool, tuple[str, ...], bool]] = {}
    abstract: frozenset[str] = getattr(base, "__abstractmethods__", frozenset())
    for klass in reversed(base.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, Plugin)):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or not inspect.isfunction(value):
                continue
            params = tuple(inspect.signature(value).parameters)[1:]
            out[name] = (inspect.iscoroutinefunction(value), params, name in abstract)
    return out


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


def _uses(module: _Module) -> Iterator[tuple[ast.stmt | ast.expr, str, str]]:
    """(node, permission needed, what the code does) for each import or call that needs one."""
    for node in module.nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([module.absolute(node.module, node.level)] if node.level == 0 else [])
            )
            for name in names:
                if _matches(name, _NETWORK_MODULES):
                    yield node, "network", f"imports {name}"
                elif _matches(name, _SUBPROCESS_MODULES):
                    yield node, "subprocess", f"imports {name}"
        elif isinstance(node, ast.Call):
            dotted = _resolve_call(module, node.func)
            short = dotted.rsplit(".", 1)[-1]
            if dotted in _NETWORK_CALLS or (short in _NETWORK_CALLS and "." in dotted):
                yield node, "network", f"calls {dotted}()"
            elif dotted in _SUBPROCESS_CALLS or (
                short in _SUBPROCESS_CALLS and short.startswith("subprocess_")
            ):
                yield node, "subprocess", f"calls {dotted}()"
            elif dotted in ("os.getenv", "os.environ.get", "os.putenv"):
                name = (
                    node.args[0].value
                    if node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    else ""
                )
                yield (
                    node,
                    f"env:{name}",
                    f"calls {dotted}({name!r})" if name else f"calls {dotted}()",
                )
        elif isinstance(node, ast.Subscript) and _resolve_call(module, node.value) == "os.environ":
            key = node.slice
            name = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else ""
            yield node, f"env:{name}", f"reads os.environ[{name!r}]" if name else "reads os.environ"


def _matches(name: str, modules: frozenset[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def _resolve_call(module: _Module, func: ast.expr) -> str:
    """``sp.run`` → ``subprocess.run`` when ``import subprocess as sp``; ``Popen`` likewise."""
    dotted = _dotted(func)
    if not dotted:
        return ""
    head, _, rest = dotted.partition(".")
    imported = module.imports.get(head)
    if imported is None:
        return dotted
    source, attr = imported
    full = f"{source}.{attr}" if attr else source
    return f"{full}.{rest}" if rest else full
