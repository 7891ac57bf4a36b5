"""``PluginProxy``: a plugin's commands as methods, called through the host (checked,
timed, counted). ``host.get(PluginClass)`` and ``host.proxy(id)`` give one.

Each command also runs many calls at once: ``await proxy.add.many([{...}, ...])``, or,
typed for mypy, ``await plugbay.many(proxy.add, [...])`` (``host.call_many``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

import msgspec

from plugbay.api import Plugin, command_specs
from plugbay.api.errors import PlugbayError
from plugbay.runtime.manager import PluginManager

__all__ = ["PluginProxy", "many"]

R = TypeVar("R")
_SCALARS: Final = frozenset({str, int, float, bool, bytes})
_Many = Callable[[Iterable[Mapping[str, Any]]], Awaitable[list[Any]]]


async def many(
    command: Callable[..., Awaitable[R]], params: Iterable[Mapping[str, Any]], /
) -> list[R | PlugbayError]:
    """Run a proxy's command once per parameter set, all at once (``host.call_many``):
    each item is that call's value or the :class:`PlugbayError` it failed with, in order.
    ``command`` is a typed proxy's, e.g. ``host.get(Calc).add``, so the values have its
    declared result type."""
    batch: _Many | None = getattr(command, "many", None)
    if batch is None:
        raise PlugbayError(
            f"{command!r} is not a command of a plugin proxy",
            hint="pass a command read on host.get(PluginClass) or host.proxy(plugin_id), "
            "e.g. plugbay.many(calc.add, [{'a': 1}])",
        )
    return await batch(params)


class PluginProxy:
    """Calls a plugin's commands through the host (checked, timed, counted).

    ``host.get(PluginClass)`` returns one typed as the class, so the caller's
    type checker sees each command's real signature.
    """

    __plugbay_proxy__ = True

    def __init__(
        self, manager: PluginManager, plugin_id: str, cls: type[Plugin] | None = None
    ) -> None:
        self._manager = manager
        self._plugin_id = plugin_id
        self._cls = cls

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._manager.activation.is_deferred(self._plugin_id):  # its first call starts it
            return self._manager.activation.first_call(self, name)
        spec = self._manager.command_spec(self._plugin_id, name)
        names = [p.name for p in spec.params]
        call = self._manager.call
        plugin_id = self._plugin_id
        manager = self._manager
        # A worker answers in plain data; the caller's class knows the declared result
        # type, so a typed proxy gives back the same objects whatever the backend.
        declared = command_specs(self._cls).get(name) if self._cls is not None else None
        returns = (
            declared.returns if declared is not None and spec.func is not declared.func else None
        )

        async def batch(params: Iterable[Mapping[str, Any]]) -> list[Any]:
            from plugbay.runtime.batch import call_many

            results = await call_many(manager, plugin_id, name, params)
            if returns is None:
                return results
            return [
                r
                if isinstance(r, PlugbayError)
                else msgspec.convert(r, returns, strict=False, from_attributes=True)
                for r in results
            ]

        if returns is not None:
            # a value already of its declared scalar type is what converting it would give
            scalar = returns if returns in _SCALARS else None

            async def typed(*args: Any, **kwargs: Any) -> Any:
                if args:
                    kwargs.update(zip(names, args, strict=False))
                result = await call(plugin_id, name, kwargs)
                if type(result) is scalar:
                    return result
                return msgspec.convert(result, returns, strict=False, from_attributes=True)

            method: Any = typed
        else:

            def plain(*args: Any, **kwargs: Any) -> Any:
                if args:
                    kwargs.update(zip(names, args, strict=False))
                return call(plugin_id, name, kwargs)

            method = plain
        method.__name__ = name
        method.__doc__ = spec.doc
        method.many = batch
        self.__dict__[name] = method
        return method

    def __repr__(self) -> str:
        return f"<PluginProxy {self._plugin_id}>"
