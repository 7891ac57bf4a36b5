"""Events a plugin emits and hears against what its manifest declares (``[events]``).

What the host refuses, found before it runs, in the code: every
``….events.emit("name", …)`` whose name the manifest does not declare under ``emits``
(refused when it is emitted), and, as the host checks the entry class when it loads
the plugin, every event the manifest listens to without an ``@on_event`` handler,
every handler of an event the manifest does not listen to, and every handler that
does not take the one parameter ``event``. An event name is read when it is a string
literal or a module-level constant.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import TypeGuard

from plugbay.pdk._analysis.base import _Context, _dotted, _Module

__all__: list[str] = []

#: one handler: its module, its method (None: made otherwise than by a decorator), and
#: the ``on_event(NAME)`` call that marks it
_Handler = tuple[_Module, ast.FunctionDef | ast.AsyncFunctionDef | None, ast.Call]

#: the classes a plugin class may derive from that hold no handlers of its own
_PLUGBAY_BASES = frozenset(
    {"Plugin", "SystemPlugin", "IntegrationPlugin", "ExtensionPlugin", "UtilityPlugin"}
)


class _EventChecks(_Context):
    def _check_event_use(self, chain: Sequence[tuple[_Module, ast.ClassDef]] | None) -> None:
        """The events the code emits; with the entry class and its local bases
        (``chain``), its handlers against the events the manifest listens to."""
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
        if chain:
            self._check_handlers(chain[0][1].name, _handlers(chain), _all_bases_known(chain))

    def _check_handlers(self, cls: str, handlers: list[_Handler], complete: bool) -> None:
        """``complete``: the handlers are all the class has (none can come from a base
        class read nowhere here)."""
        heard: set[str | None] = set()
        for module, fn, mark in handlers:
            event = _constant(module, mark.args[0]) if mark.args else None
            heard.add(event)
            if event is not None and event not in self.m.listens:
                self.add(
                    "error",
                    "events",
                    f"{cls} handles {event}, which the manifest does not listen to",
                    (module.path, mark.lineno),
                    f'add [events.listens."{event}"] to the manifest, or drop the handler',
                )
            if fn is not None and _parameters(fn) != ["event"]:
                self.add(
                    "error",
                    "events",
                    f"the handler of event '{event or '?'}' must take one parameter, 'event'",
                    (module.path, fn.lineno),
                    "write it as: async def handler(self, event: Payload) -> None",
                )
        if None in heard or not complete:
            return  # a handler not read here may be any of them
        for event in sorted(set(self.m.listens) - heard):
            self.add(
                "error",
                "events",
                f"the manifest listens to {event} but {cls} has no handler",
                self.in_manifest(("events", "listens", event)),
                f'mark a method @on_event("{event}") taking one parameter, event',
            )


def _handlers(chain: Sequence[tuple[_Module, ast.ClassDef]]) -> list[_Handler]:
    """Every handler of the class and its local bases: a method marked ``@on_event(…)``
    (or with a module-level name for such a mark), or one made in the class body as
    ``saved = on_event(…)(method)``."""
    found: list[_Handler] = []
    for module, cls in chain:
        for item in cls.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                for decorator in item.decorator_list:
                    if isinstance(decorator, ast.Name):
                        decorator = module.aliases.get(decorator.id, decorator)
                    if _is_mark(decorator):
                        found.append((module, item, decorator))
            elif isinstance(item, ast.Assign | ast.AnnAssign) and item.value is not None:
                for node in ast.walk(item.value):
                    if _is_mark(node):
                        found.append((module, None, node))
    return found


def _is_mark(node: ast.AST) -> TypeGuard[ast.Call]:
    """Whether ``node`` is an ``on_event(…)`` call."""
    return isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] == "on_event"


def _all_bases_known(chain: Sequence[tuple[_Module, ast.ClassDef]]) -> bool:
    """Whether every base class of the chain is in it, or one of plugbay's plugin classes."""
    local = {cls.name for _, cls in chain}
    return all(
        _dotted(base).split(".")[-1] in local | _PLUGBAY_BASES
        for _, cls in chain
        for base in cls.bases
    )


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Its parameters after ``self``; ``*args`` and ``**kwargs`` among them."""
    args = fn.args
    names = [a.arg for a in [*args.posonlyargs, *args.args]][1:]
    names += [a.arg for a in args.kwonlyargs]
    names += [f"*{a.arg}" for a in (args.vararg, args.kwarg) if a is not None]
    return names


def _constant(module: _Module, arg: ast.expr) -> str | None:
    """A string literal, or a module-level constant's."""
    if isinstance(arg, ast.Name):
        arg = module.aliases.get(arg.id, arg)
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


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
    return _constant(module, node.args[0])
