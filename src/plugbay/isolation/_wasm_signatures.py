"""The types of the plugbay Wasm ABI's exports and imports, checked as a module loads.

A module whose ``plugbay_call`` takes two arguments, or that imports ``plugbay.storage``
with one, is refused by ``plugbay validate`` and at start with a message naming the
export or import and both types, instead of trapping at its first call or failing in
wasmtime's linker with the host's own words.
"""

from __future__ import annotations

from typing import Final

import wasmtime

__all__ = ["signature_mistake"]

#: (parameters, results) of each function the ABI names, parameters by their ABI names
_Signature = tuple[tuple[str, ...], tuple[str, ...]]
_REPLY: Final = ("i64",)
_EXPORTS: Final[dict[str, _Signature]] = {
    "plugbay_alloc": (("size",), ("i32",)),
    "plugbay_free": (("ptr", "size"), ()),
    "plugbay_init": (("ptr", "len"), _REPLY),
    "plugbay_call": (("cmd", "cmd_len", "ptr", "len"), _REPLY),
    "plugbay_cleanup": ((), _REPLY),
    "plugbay_export_state": ((), _REPLY),
    "plugbay_import_state": (("ptr", "len"), _REPLY),
    "_initialize": ((), ()),
}
_IMPORTS: Final[dict[str, _Signature]] = {
    "log": (("ptr", "len"), ()),
    **dict.fromkeys(("storage", "event", "service", "secret"), (("ptr", "len"), _REPLY)),
}
_FIX: Final = "declare it with the ABI's signature (docs/wasm-plugins.md, 'The ABI'), as the C SDK's plugbay.c does"


def _found(kind: object) -> str:
    if isinstance(kind, wasmtime.FuncType):
        params = ", ".join(str(p) for p in kind.params)
        results = ", ".join(str(r) for r in kind.results)
        return f"({params}) -> {results or '()'}"
    return {
        wasmtime.MemoryType: "a memory",
        wasmtime.GlobalType: "a global",
        wasmtime.TableType: "a table",
    }.get(type(kind), "not a function")


def _expected(signature: _Signature) -> str:
    params, results = signature
    return f"({', '.join(f'{name}: i32' for name in params)}) -> {', '.join(results) or '()'}"


def _matches(kind: object, signature: _Signature) -> bool:
    if not isinstance(kind, wasmtime.FuncType):
        return False
    params, results = signature
    return [str(p) for p in kind.params] == ["i32"] * len(params) and [
        str(r) for r in kind.results
    ] == list(results)


def signature_mistake(module: wasmtime.Module) -> str | None:
    """What is wrong with the types of ``module``'s ABI exports and ``plugbay.*``
    imports, in the user's words, or None when they are the ABI's."""
    for export in module.exports:
        if export.name == "memory" and not isinstance(export.type, wasmtime.MemoryType):
            return f"the module's export memory is {_found(export.type)}, not its linear memory"
        signature = _EXPORTS.get(export.name)
        if signature is not None and not _matches(export.type, signature):
            return (
                f"the module's export {export.name} has the type {_found(export.type)}, "
                f"the ABI's is {_expected(signature)}: {_FIX}"
            )
    for imp in module.imports:
        signature = _IMPORTS.get(imp.name or "") if imp.module == "plugbay" else None
        if signature is not None and not _matches(imp.type, signature):
            return (
                f"the module imports plugbay.{imp.name} with the type {_found(imp.type)}, "
                f"the host's is {_expected(signature)}: {_FIX}"
            )
    return None
