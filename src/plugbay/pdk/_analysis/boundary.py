"""Command annotations: which types the call boundary can check and carry across
a process."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from functools import cache
from typing import Any, Final

from plugbay.pdk._analysis.base import _Context, _dotted, _Module, _target_name

# names an annotation may use without importing them
_BUILTIN_TYPES: Final = frozenset(
    {"str", "int", "float", "bool", "bytes", "bytearray", "list", "dict", "set", "frozenset",
     "tuple", "None", "memoryview", "object"}
)  # fmt: skip


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


def _class_kind(node: ast.ClassDef) -> tuple[bool, bool]:
    """(structured, enum): whether a class of the plugin's is a record or an enum, by its
    decorators and bases as written."""
    decorators = {
        _dotted(d.func if isinstance(d, ast.Call) else d).split(".")[-1]
        for d in node.decorator_list
    }
    bases = {
        _dotted(b.value if isinstance(b, ast.Subscript) else b).split(".")[-1] for b in node.bases
    }
    data_like = "dataclass" in decorators or "define" in decorators or "frozen" in decorators
    structured = data_like or bool(bases & {"TypedDict", "NamedTuple", "Struct"})
    enum = bool(bases & {"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"})
    return structured, enum


# a part of an annotation and (severity, what is wrong, what to do)
_Unchecked = tuple[ast.expr, tuple[str, str, str]]


class _BoundaryChecks(_Context):
    """Every type a command takes or returns can cross the call boundary."""

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
    ) -> Iterator[_Unchecked]:
        """Parts of an annotation the call boundary cannot check, with why and a fix."""
        if isinstance(expr, ast.Constant):
            yield from self._unchecked_string(module, expr, seen)
        elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
            yield from self._unchecked_types(module, expr.left, seen)
            yield from self._unchecked_types(module, expr.right, seen)
        elif isinstance(expr, ast.Subscript):
            yield from self._unchecked_subscript(module, expr, seen)
        elif isinstance(expr, (ast.Tuple, ast.List)):
            for element in expr.elts:
                yield from self._unchecked_types(module, element, seen)
        elif isinstance(expr, ast.Name):
            yield from self._unchecked_name(module, expr, seen)
        elif isinstance(expr, ast.Attribute):
            dotted = _dotted(expr)
            head, _, attr = dotted.rpartition(".")
            imported = module.imports.get(head.split(".")[0])
            if imported is not None and imported[1] is None:
                source = imported[0] + head[len(head.split(".")[0]) :]
                yield from self._check_external(source, attr, expr)

    def _unchecked_string(
        self, module: _Module, expr: ast.Constant, seen: set[int]
    ) -> Iterator[_Unchecked]:
        """A string annotation is parsed and checked; None, Ellipsis and Literal values pass."""
        if not isinstance(expr.value, str):
            return
        try:
            inner = ast.parse(expr.value, mode="eval").body
        except SyntaxError:
            yield expr, ("error", f"'{expr.value}' is not a type", "fix the annotation")
            return
        ast.copy_location(inner, expr)
        for sub in ast.walk(inner):
            ast.copy_location(sub, expr)
        yield from self._unchecked_types(module, inner, seen)

    def _unchecked_subscript(
        self, module: _Module, expr: ast.Subscript, seen: set[int]
    ) -> Iterator[_Unchecked]:
        """``X[A, B]``: X and its arguments, except Literal's values and Annotated's metadata."""
        yield from self._unchecked_types(module, expr.value, seen)
        head = _dotted(expr.value)
        if head.split(".")[-1] == "Literal":
            return
        elements = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
        if head.split(".")[-1] == "Annotated":
            elements = elements[:1]
        for element in elements:
            yield from self._unchecked_types(module, element, seen)

    def _unchecked_name(
        self, module: _Module, expr: ast.Name, seen: set[int]
    ) -> Iterator[_Unchecked]:
        """A name: a class or type alias of the module, an import, or a builtin."""
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
            yield from self._unchecked_import(imported, expr, seen)
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

    def _unchecked_import(
        self, imported: tuple[str, str | None], expr: ast.Name, seen: set[int]
    ) -> Iterator[_Unchecked]:
        """A name imported from another module of the plugin, or from outside it."""
        source, attr = imported
        if attr is None:
            return
        if source in self.modules:
            target = self.modules[source]
            yield from (
                (expr, problem)
                for _, problem in self._unchecked_types(target, ast.Name(attr), seen)
            )
            return
        yield from self._check_external(source, attr, expr)

    def _check_local_type(
        self, module: _Module, node: ast.ClassDef, expr: ast.expr, seen: set[int]
    ) -> Iterator[_Unchecked]:
        if id(node) in seen:
            return
        seen.add(id(node))
        structured, enum = _class_kind(node)
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
            yield from self._unchecked_fields(module, node, expr, seen)

    def _unchecked_fields(
        self, module: _Module, node: ast.ClassDef, expr: ast.expr, seen: set[int]
    ) -> Iterator[_Unchecked]:
        """The annotated fields of a structured class (ClassVars are not carried)."""
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

    def _check_external(self, source: str, attr: str, expr: ast.expr) -> Iterator[_Unchecked]:
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
