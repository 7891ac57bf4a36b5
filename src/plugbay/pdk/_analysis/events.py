"""Events a plugin emits against what its manifest declares (``[events] emits``).

The host refuses an undeclared event when it is emitted; this finds it before, in
the code: every ``….events.emit("name", …)`` whose name is a string literal or a
module-level constant. (A listener without a handler, or a handler the manifest
does not list, is found when the plugin is imported.)
"""

from __future__ import annotations

import ast

from plugbay.pdk._analysis.base import _Context, _dotted, _Module

__all__: list[str] = []


class _EventChecks(_Context):
    def _check_event_use(self) -> None:
        for module in self.modules.values():
            for node in module.nodes:
                name = _emitted(module, node)
                if name is not None and name not in self.m.emits:
                    line = getattr(node, "lineno", None)
                    self.add(
                        "error",
                        "events",
                        f"emits the event '{name}', which the manifest does not declare",
                        (module.path, line),
                        f'declare it: [events] emits = ["{name}"] (the host refuses an '
                        "undeclared event)",
                    )


def _emitted(module: _Module, node: ast.AST) -> str | None:
    """The event name of a ``….events.emit(NAME, …)`` call, when it is known statically."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "emit"
        and _dotted(node.func.value).split(".")[-1] == "events"
        and node.args
    ):
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Name):
        arg = module.aliases.get(arg.id, arg)
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None
