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
