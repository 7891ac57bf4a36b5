"""A Wasm plugin's declarations: its commands' types and how its module is built.

A Wasm module carries no Python annotations, so a Wasm plugin declares its
commands in its manifest, with the same types a Python command annotates, and
the host checks every call against them at the same boundary::

    runtime = "wasm"
    entry = "build/echo.wasm"            # the core module, relative to the manifest

    [commands.add]
    params = { a = "int", b = "int" }
    returns = "int"
    doc = "The sum of a and b."

    [commands.greet]
    params = { name = "str", punctuation = "str" }
    defaults = { punctuation = "!" }
    returns = "str"

    [wasm]
    sources = ["src/echo.c"]             # what 'plugbay build' compiles into entry
    cflags = ["-O2"]

A type is a Python type expression over ``int``, ``float``, ``str``, ``bool``,
``bytes``, ``None``, ``Any``, ``list[T]``, ``dict[str, T]``, ``tuple[T, ...]``,
``Literal[...]`` and unions (``T | None``); anything else is a
:class:`ManifestError` naming the command and the parameter. No plugin code is
run to read them (design decision 1).
"""

from __future__ import annotations

import ast
import inspect
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from plugbay.api import CommandSpec
from plugbay.api._command import CommandMethod
from plugbay.api.errors import ManifestError
from plugbay.model._manifest_errors import locate
from plugbay.model._toml_lines import key_lines

__all__ = [
    "WasmCommand",
    "WasmDeclarations",
    "command_lines",
    "parse_type",
    "spelled_type",
    "wasm_declarations",
]

_NAMES: Final[Mapping[str, Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "bytes": bytes,
    "None": None,
    "Any": Any,
}
_GENERIC: Final = {"list": list, "dict": dict, "tuple": tuple, "set": set, "frozenset": frozenset}
_PARAM_RE: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
_COMMAND_RE: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
_COMMAND_KEYS: Final = frozenset({"params", "returns", "doc", "defaults", "timeout"})
_WASM_KEYS: Final = frozenset({"sources", "cflags", "language"})


def parse_type(text: str) -> Any:
    """A Python type from its spelling in a manifest (see the module docstring)."""
    if not isinstance(text, str) or len(text) > 256:
        raise ValueError("a type is a short string such as 'int' or 'list[str]'")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"'{text}' is not a type expression") from None
    return _type(tree)


def _type(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _type(node.left), _type(node.right)
        return (type(None) if left is None else left) | (type(None) if right is None else right)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        name = node.value.id
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if name == "Literal":
            return _literal(args)
        if name in _GENERIC:
            return _generic(name, args)
    raise ValueError(
        f"'{ast.unparse(node)}' is not a type a Wasm command can declare "
        "(int, float, str, bool, bytes, None, Any, list[T], dict[str, T], tuple[...], "
        "Literal[...], T | None)"
    )


def _literal(args: list[ast.expr]) -> Any:
    values = []
    for arg in args:
        if not isinstance(arg, ast.Constant) or not isinstance(arg.value, str | int | bool):
            raise ValueError("Literal[...] takes strings, integers or booleans")
        values.append(arg.value)
    return Literal.__getitem__(tuple(values))


def _generic(name: str, args: list[ast.expr]) -> Any:
    if name == "tuple" and len(args) == 2 and isinstance(args[1], ast.Constant):
        if args[1].value is not Ellipsis:
            raise ValueError("write tuple[T, ...] or tuple[A, B]")
        return tuple[_type(args[0]), ...]  # type: ignore[misc]
    parsed = tuple(_type(a) for a in args)
    expected = {"dict": 2, "tuple": len(parsed)}.get(name, 1)
    if len(parsed) != expected:
        raise ValueError(f"{name}[...] takes {expected} type(s)")
    if name == "dict" and parsed[0] is not str:
        raise ValueError("dict keys are str (JSON objects)")
    return _GENERIC[name][parsed if len(parsed) > 1 else parsed[0]]  # type: ignore[index]


@dataclass(frozen=True)
class WasmCommand:
    """One declared command: its parameters (name, type, default or ``inspect._empty``)."""

    name: str
    params: tuple[tuple[str, Any, Any], ...]
    returns: Any
    doc: str = ""
    timeout: float | None = None


@dataclass(frozen=True)
class WasmDeclarations:
    """What a Wasm plugin's manifest declares beyond any plugin's keys."""

    plugin: str
    #: the module's path, relative to the manifest's directory
    module: str
    commands: Mapping[str, WasmCommand]
    #: C sources 'plugbay build' compiles into ``module`` (relative paths)
    sources: tuple[str, ...] = ()
    cflags: tuple[str, ...] = ()
    language: str = "c"
    _specs: dict[str, CommandSpec] = field(default_factory=dict, repr=False, compare=False)

    def protocol(self) -> str:
        """A typed proxy's class for callers, as Python source: a ``Protocol`` with one
        ``async def`` per command, so ``proxy: TextStats = host.proxy(id)`` lets mypy
        check every call (``plugbay build`` writes it beside the module)."""
        name = "".join(part.capitalize() for part in re.split(r"[._-]", self.plugin)) + "Api"
        lines = [
            f'"""The commands of {self.plugin}, typed (written by plugbay build)."""',
            "",
            "from __future__ import annotations",
            "",
            "from typing import Any, Literal, Protocol",
            "",
            "",
            f"class {name}(Protocol):",
            f'    """``proxy: {name} = host.proxy("{self.plugin}")``"""',
        ]
        for command in self.commands.values():
            params = ", ".join(
                f"{n}: {_spelled(t)}" + ("" if d is inspect.Parameter.empty else f" = {d!r}")
                for n, t, d in command.params
            )
            lines += ["", f"    async def {command.name}(self{', *, ' if params else ''}{params}) "
                      f"-> {_spelled(command.returns)}: ..."]  # fmt: skip
        return "\n".join(lines) + "\n"

    def specs(self) -> dict[str, CommandSpec]:
        """The commands as the host checks them (the same class as a Python command's)."""
        if not self._specs:
            owner = type(f"wasm:{self.plugin}", (), {"__module__": "plugbay.wasm"})
            for command in self.commands.values():
                self._specs[command.name] = CommandSpec(owner, _method(command))
        return self._specs


def spelled_type(tp: Any) -> str:
    """A declared type as Python source (what the manifest wrote, resolved)."""
    return _spelled(tp)


def command_lines(text: str) -> dict[str, int]:
    """The line (from 1) of each ``[commands.NAME]`` table in a manifest's text."""
    return {
        path[1]: line
        for path, line in key_lines(text).items()
        if len(path) == 2 and path[0] == "commands"
    }


def _spelled(tp: Any) -> str:
    """A type as Python source (what the manifest wrote, resolved)."""
    if tp is type(None) or tp is None:
        return "None"
    if isinstance(tp, type):
        return tp.__name__
    return repr(tp).replace("typing.", "").replace("NoneType", "None")


def _method(command: WasmCommand) -> CommandMethod[Any, Any, Any]:
    """A stand-in method with the declared signature: CommandSpec reads its annotations."""

    def runs_in_wasm(self: Any, **params: Any) -> Any:
        raise RuntimeError("a Wasm command runs in its module, not in the host")

    kind = inspect.Parameter.KEYWORD_ONLY
    runs_in_wasm.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(n, kind, default=d, annotation=t) for n, t, d in command.params]
    )
    runs_in_wasm.__annotations__ = {n: t for n, t, _ in command.params} | {
        "return": command.returns
    }
    runs_in_wasm.__doc__ = command.doc
    runs_in_wasm.__name__ = command.name
    method: CommandMethod[Any, Any, Any] = CommandMethod(
        runs_in_wasm, name=command.name, timeout=command.timeout
    )
    method.is_async = True  # the backend runs it off the loop
    return method


def wasm_declarations(
    plugin: str,
    runtime: str,
    commands: Mapping[str, Any],
    wasm: Mapping[str, Any],
    where: str,
    text: str | None,
    *,
    entry: str | None = None,
) -> WasmDeclarations:
    """Check a Wasm plugin's manifest keys; every problem is a :class:`ManifestError`."""

    def fail(message: str, hint: str, *key: str) -> ManifestError:
        """The problem at the line that sets ``key`` (a path: ``commands``, its name, ...)."""
        at = locate(where, text, key) if key else where
        return ManifestError(message, plugin=plugin, where=at, hint=hint)

    if runtime != "wasm":
        raise fail(
            "[commands] and [wasm] are for Wasm plugins",
            'add runtime = "wasm" (a Python plugin declares its commands with @command)',
        )
    module = entry or ""
    if not module.endswith(".wasm") or module.startswith("/") or ".." in module.split("/"):
        raise fail(
            f"entry '{module}' of a Wasm plugin must be a .wasm path inside the plugin",
            'name the module relative to the manifest, e.g. entry = "build/plugin.wasm"',
            "entry",
        )
    if not commands:
        raise fail(
            "a Wasm plugin declares no commands",
            '[commands.NAME] params = { a = "int" }, returns = "int" (docs/wasm-plugins.md)',
        )
    declared = {name: _command(name, body, fail) for name, body in commands.items()}
    unknown = set(wasm) - _WASM_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise fail(
            f"[wasm] has no key '{key}'", f"keys: {', '.join(sorted(_WASM_KEYS))}", "wasm", key
        )
    sources = _strings(wasm.get("sources", []), "sources", fail)
    cflags = _strings(wasm.get("cflags", []), "cflags", fail)
    for source in sources:
        if source.startswith("/") or ".." in source.split("/"):
            raise fail(
                f"[wasm] source '{source}' is outside the plugin",
                "use relative paths",
                "wasm",
                "sources",
            )
    language = wasm.get("language", "c")
    if language not in ("c", "python"):
        raise fail(
            f"[wasm] language '{language}' cannot be built here",
            'language = "c" or "python"',
            "wasm",
            "language",
        )
    return WasmDeclarations(plugin, module, declared, tuple(sources), tuple(cflags), language)


def _command(name: str, body: Any, fail: Any) -> WasmCommand:
    table = ("commands", name)
    if not _COMMAND_RE.match(name):
        raise fail(f"'{name}' is not a command name", "use lower_case names", *table)
    if not isinstance(body, Mapping):
        raise fail(f"[commands.{name}] must be a table", 'params = { ... }, returns = "T"', *table)
    unknown = set(body) - _COMMAND_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise fail(
            f"[commands.{name}] has no key '{key}'",
            f"keys: {', '.join(sorted(_COMMAND_KEYS))}",
            *table,
            key,
        )
    params = _params(name, body.get("params", {}), body.get("defaults", {}), fail)
    if "returns" not in body:
        raise fail(
            f"command '{name}' declares no result type", 'add returns = "None" or a type', *table
        )
    try:
        returns = parse_type(body["returns"])
    except ValueError as exc:
        raise fail(
            f"command '{name}' returns: {exc}", 'e.g. returns = "str"', *table, "returns"
        ) from None
    timeout = body.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise fail(
            f"command '{name}' timeout must be a positive number",
            "seconds, e.g. 2.5",
            *table,
            "timeout",
        )
    doc = body.get("doc", "")
    if not isinstance(doc, str):
        raise fail(f"command '{name}' doc must be a string", "", *table, "doc")
    return WasmCommand(name, params, type(None) if returns is None else returns, doc, timeout)


def _params(name: str, table: Any, defaults: Any, fail: Any) -> tuple[tuple[str, Any, Any], ...]:
    """A command's parameters, required ones first (Python's rule; a manifest may mix them)."""
    at = ("commands", name, "params")
    if not isinstance(table, Mapping) or not isinstance(defaults, Mapping):
        raise fail(
            f"[commands.{name}] params and defaults are tables", 'params = { a = "int" }', *at
        )
    params: list[tuple[str, Any, Any]] = []
    for pname, spelled in table.items():
        if not _PARAM_RE.match(pname) or keyword.iskeyword(pname):
            raise fail(
                f"command '{name}' parameter '{pname}' is not a parameter name",
                "use a lower_case name that is not a Python keyword",
                *at,
            )
        try:
            tp = parse_type(spelled)
        except ValueError as exc:
            raise fail(f"command '{name}' parameter '{pname}': {exc}", 'e.g. "int"', *at) from None
        params.append((pname, tp, defaults.get(pname, inspect.Parameter.empty)))
    missing = set(defaults) - set(table)
    if missing:
        raise fail(
            f"command '{name}' has a default for '{sorted(missing)[0]}', which is not a parameter",
            "declare it under params",
            "commands",
            name,
            "defaults",
        )
    params.sort(key=lambda p: p[2] is not inspect.Parameter.empty)
    return tuple(params)


def _strings(value: Any, key: str, fail: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"[wasm] {key} must be a list of strings", '["src/plugin.c"]', "wasm", key)
    return list(value)
