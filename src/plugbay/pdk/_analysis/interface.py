"""The entry class: it exists, derives from its type's base class, keeps the
interface's signatures, and its commands are well formed."""

from __future__ import annotations

import ast
import inspect
from functools import cache
from typing import Any, Final

from plugbay.api import ExtensionPlugin, IntegrationPlugin, Plugin, SystemPlugin, UtilityPlugin
from plugbay.pdk._analysis.base import _command_name, _is_command, _Module
from plugbay.pdk._analysis.boundary import _BoundaryChecks, _external

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


# method name -> (module, definition), the nearest class in the chain winning
_Methods = dict[str, tuple[_Module, ast.FunctionDef | ast.AsyncFunctionDef]]


def _methods(chain: list[tuple[_Module, ast.ClassDef]]) -> _Methods:
    """The methods the plugin's own classes define, a subclass overriding its bases."""
    methods: _Methods = {}
    for mod, cls in reversed(chain):
        for item in cls.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                methods[item.name] = (mod, item)
    return methods


def _resolve_outside(source: str, attr: str) -> tuple[str, Any]:
    """A class imported from outside the plugin: a plugbay base, or whatever it is."""
    if source in ("plugbay", "plugbay.api") and attr in _BASES:
        return "plugbay", attr
    return "external", _external(source, attr)


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


class _InterfaceChecks(_BoundaryChecks):
    """The entry class and its commands against the plugin type's interface."""

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
            return self._resolve_name(module, expr.id)
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            imported = module.imports.get(expr.value.id)
            if imported is not None and imported[1] is None:
                return _resolve_outside(imported[0], expr.attr)
        return None

    def _resolve_name(self, module: _Module, name: str) -> tuple[str, Any] | None:
        """A bare class name: defined in ``module``, or imported into it."""
        if name in module.classes:
            return "local", (module, module.classes[name])
        imported = module.imports.get(name)
        if imported is None:
            return None
        source, attr = imported
        if attr is None:
            return None
        if source in self.modules:
            target = self.modules[source]
            if attr in target.classes:
                return "local", (target, target.classes[attr])
            return self._resolve_name(target, attr)
        return _resolve_outside(source, attr)

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
        base_cls = self._check_base(module, node)
        if base_cls is None:
            return
        chain = self._class_chain(module, node)
        methods = _methods(chain)
        for mod, cls in reversed(chain):
            for item in cls.body:
                self._check_identity(mod, item)
        self._check_interface_methods(module, node, base_cls, methods)
        self._check_state_hooks(methods)
        for _name, (mod, fn) in sorted(methods.items()):
            if _is_command(fn):
                self._check_command(mod, fn)

    def _check_base(self, module: _Module, node: ast.ClassDef) -> type[Plugin] | None:
        """The plugbay class the entry class is checked against (None: it derives from none)."""
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
            return None
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
        return base_cls

    def _check_interface_methods(
        self, module: _Module, node: ast.ClassDef, base_cls: type[Plugin], methods: _Methods
    ) -> None:
        """Every abstract method is there, and every overridden one keeps its signature."""
        for name, (is_async, params, abstract) in _interface(base_cls).items():
            if name not in methods:
                if abstract:
                    self.add(
                        "error",
                        "interface",
                        f"{node.name} does not implement {name}(), which every "
                        f"{base_cls.__name__} must have",
                        (module.path, node.lineno),
                        f"add {'async ' if is_async else ''}def {name}(self"
                        + "".join(f", {p}" for p in params)
                        + ")",
                    )
                continue
            mod, fn = methods[name]
            if _is_command(fn):
                continue
            self._check_signature(mod, fn, base_cls.__name__, is_async, params)

    def _check_state_hooks(self, methods: _Methods) -> None:
        for state_hook in ("export_state", "import_state"):
            if state_hook in methods and _is_command(methods[state_hook][1]):
                self.add(
                    "warning",
                    "interface",
                    f"{state_hook} is a command; the host calls it directly on reload",
                    (methods[state_hook][0].path, methods[state_hook][1].lineno),
                    "drop @command from it",
                )

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
