"""The imports a plugin's modules run when they are imported, found without importing them.

An import that fails stops the import of the plugin at its first failure, and says
nothing of the others; read from the code, every one is found in one run, each at its
line. A module of the plugin's own that does not exist (``from .helpers import x``), a
name it does not define, its own module imported by an absolute name (the host imports
a directory plugin's code as a package of its own, where only relative imports find
it), and a third-party module that is not installed and no requirement provides. Only
what runs at import is read: not the body of a function, not an import under ``if
TYPE_CHECKING`` or in a ``try`` that catches its failure.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator

from plugbay.pdk._analysis.base import _Context, _dotted, _Module

__all__: list[str] = []

#: what a ``try`` catches that makes an import in it optional
_CATCHES_IMPORT = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


class _ImportChecks(_Context):
    """The imports each module runs at import time can be met."""

    def _check_imports(self) -> None:
        for module in self._imported_modules():
            for node, surely in _import_time_imports(module.tree.body):
                if isinstance(node, ast.ImportFrom) and node.level:
                    self._check_relative(module, node)
                elif surely:  # under an ``if`` it may be another Python's or platform's
                    self._check_absolute(module, node)

    def _imported_modules(self) -> list[_Module]:
        """The plugin's modules the host imports: the entry module, its packages, and
        every module of the plugin they import at import time, and so on."""
        todo = [self.m.module]
        seen: set[str] = set()
        found: list[_Module] = []
        while todo:
            parts = todo.pop().split(".")
            for end in range(1, len(parts) + 1):  # importing a.b runs a, then a.b
                name = ".".join(parts[:end])
                module = self.modules.get(name)
                if name in seen or module is None:
                    continue
                seen.add(name)
                found.append(module)
                for node, _ in _import_time_imports(module.tree.body):
                    todo += _names_imported(module, node)
        return found

    # -- the plugin's own modules ---------------------------------------------------

    def _check_relative(self, module: _Module, node: ast.ImportFrom) -> None:
        target = module.absolute(node.module, node.level)
        shown = "." * node.level + (node.module or "")
        if node.module and not self._has_module(target):
            self._missing(
                module,
                node,
                f"imports '{shown}', a module of the plugin that does not exist",
                f"create {target.replace('.', '/') or '.'}.py, or fix the import",
            )
            return
        package = self.modules.get(target) if target else None  # the root's __init__ never runs
        for alias in node.names:
            name = alias.name
            if name == "*" or self._has_module(f"{target}.{name}" if target else name):
                continue
            if package is not None and not _may_define(package, name):
                self._missing(
                    module,
                    node,
                    f"imports '{name}' from '{shown}', which does not define it",
                    f"define {name} in {package.path.name}, or fix the import",
                )
            elif package is None:
                self._missing(
                    module,
                    node,
                    f"imports '{name}' from '{shown}', which has no module '{name}'",
                    f"create {name}.py beside it, or fix the import",
                )

    def _has_module(self, dotted: str) -> bool:
        """Whether ``dotted`` (relative to the plugin's root) is one of its modules or
        packages (a directory is a namespace package)."""
        if dotted in self.modules:
            return True
        path = self.root.joinpath(*dotted.split(".")) if dotted else self.root
        return path.is_dir() or path.with_suffix(".py").is_file()

    # -- everything else ------------------------------------------------------------

    def _check_absolute(self, module: _Module, node: ast.Import | ast.ImportFrom) -> None:
        names = (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
        for name in names:
            top = name.split(".")[0]
            if not top or top in self.unimportable or _always_there(top) or _found(top):
                continue
            if self._has_module(top):
                self.unimportable.add(top)
                self._missing(
                    module,
                    node,
                    f"imports its own module '{top}' by its absolute name: the host imports "
                    f"the plugin's code as a package, where this fails (no module named '{top}')",
                    f"import it relatively: 'from . import {top}' (or 'from .{top} import …')",
                )
            elif not self._provided(top):
                self.unimportable.add(top)
                self._missing(
                    module,
                    node,
                    f"imports '{top}', which is not installed here and no Python requirement "
                    f"of the plugin provides: loading it fails (no module named '{top}')",
                    f'install it, and add it to python-dependencies (e.g. "{top}>=…")',
                )

    def _provided(self, top: str) -> bool:
        """Whether a requirement of the plugin may provide ``top`` (in the environment the
        host builds for it at install): one of its name, or one not installed here, whose
        modules are not known here (``PyYAML`` provides ``yaml``)."""
        import importlib.metadata

        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        for text in self.m.python_dependencies:
            name = Requirement(text).name
            if canonicalize_name(name) == canonicalize_name(top):
                return True
            try:
                importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                return True
        return False

    def _missing(self, module: _Module, node: ast.stmt, message: str, hint: str) -> None:
        self.add("error", "import", message, (module.path, node.lineno), hint)


def _import_time_imports(
    body: list[ast.stmt], surely: bool = True
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """The import statements of ``body`` that run when the module is imported, each with
    whether it surely runs (not under an ``if``: ``if sys.version_info < (3, 12)``)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, surely
        elif isinstance(node, ast.If):
            if not _dotted(node.test).endswith("TYPE_CHECKING"):
                yield from _import_time_imports(node.body, False)
            yield from _import_time_imports(node.orelse, False)
        elif isinstance(node, ast.Try | ast.TryStar):
            if not any(_catches_import(h) for h in node.handlers):
                yield from _import_time_imports(node.body, surely)
            yield from _import_time_imports(node.orelse, surely)
            yield from _import_time_imports(node.finalbody, surely)
        elif isinstance(node, ast.ClassDef | ast.With | ast.For | ast.While):
            yield from _import_time_imports(node.body, surely)


def _names_imported(module: _Module, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import may import (the plugin's own among them)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = module.absolute(node.module, node.level) if node.level else (node.module or "")
    return [base, *(f"{base}.{a.name}" if base else a.name for a in node.names)]


def _catches_import(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(_dotted(t).split(".")[-1] in _CATCHES_IMPORT for t in types)


def _may_define(module: _Module, name: str) -> bool:
    """Whether ``module`` may define ``name`` at import (any binding at module level; a
    module that defines names in ways not read here may define anything)."""
    return any(_bound(node) & {name, "*"} for node in _module_level(module.tree))


def _bound(node: ast.AST) -> set[str]:
    """The names ``node`` binds in its module ("*": any name it may bind)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {"*"} if node.name == "__getattr__" else {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {"*" if a.name == "*" else a.asname or a.name.split(".")[0] for a in node.names}
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return {node.id}
    if isinstance(node, ast.Global | ast.Nonlocal) or _dynamic(node):
        return {"*"}
    return set()


def _dynamic(node: ast.AST) -> bool:
    """``globals()[…] = …``, ``setattr(sys.modules[__name__], …)``: names made at run time."""
    return isinstance(node, ast.Call) and _dotted(node.func) in ("globals", "setattr", "vars")


def _module_level(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node of the module outside the bodies of its functions and classes (their
    names included)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        stack.extend(ast.iter_child_nodes(node))


def _always_there(top: str) -> bool:
    return top in ("plugbay", "__future__") or top in sys.stdlib_module_names


def _found(top: str) -> bool:
    """Whether the top-level module ``top`` can be imported here (found, never run)."""
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False
