"""``PluginProxy``: a plugin's commands as methods, called through the host (checked,
timed, counted). ``host.get(PluginClass)`` and ``host.proxy(id)`` give one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from plugbay.api import Plugin, command_specs
from plugbay.runtime.manager import PluginManager

__all__ = ["PluginProxy"]


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
        # A worker answers in plain data; the caller's class knows the declared result
        # type, so a typed proxy gives back the same objects whatever the backend.
        declared = command_specs(self._cls).get(name) if self._cls is not None else None
        if declared is not None and spec.func is not declared.func:
            returns = declared.returns

            async def typed(*args: Any, **kwargs: Any) -> Any:
                if args:
                    kwargs.update(zip(names, args, strict=False))
                result = await call(plugin_id, name, kwargs)
                return msgspec.convert(result, returns, strict=False, from_attributes=True)

            typed.__name__ = name
            typed.__doc__ = spec.doc
            self.__dict__[name] = typed
            return typed

        def method(*args: Any, **kwargs: Any) -> Any:
            if args:
                kwargs.update(zip(names, args, strict=False))
            return call(plugin_id, name, kwargs)

        method.__name__ = name
        method.__doc__ = spec.doc
        self.__dict__[name] = method
        return method

    def __repr__(self) -> str:
        return f"<PluginProxy {self._plugin_id}>"
