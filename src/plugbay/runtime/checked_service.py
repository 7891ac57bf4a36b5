"""A service of host data as an inline plugin holds it with only some of the permissions
its commands need: each command is checked as the plugin names it, as a sandboxed
plugin's host call is (``runtime.broker``).

``context.services.require`` of a service of host data is allowed when some command of
it is open to the plugin (``isolation.host_data``): a plugin granted only
``host:metrics-read`` requires ``plugbay.host`` for its ``health``. An inline plugin gets
the service in the host's process, so this wrapper is what refuses its other commands
(``plugins``, ``state``) in the broker's words. A plugin holding every permission gets
the service itself. Inline code can reach past it: it catches honest mistakes, not
attacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

__all__ = ["CheckedService"]


class CheckedService:
    """``service``, each command (attribute) of it checked by ``check`` first, which
    raises the broker's refusal."""

    __slots__ = ("_check", "_service")
    #: answered for like a proxy when the plugin asks for a type (``runtime.services``)
    __plugbay_proxy__: Final = True

    def __init__(self, service: object, check: Callable[[str], None]) -> None:
        self._service = service
        self._check = check

    def __getattr__(self, command: str) -> Any:
        if command.startswith("_"):
            raise AttributeError(command)
        found = getattr(self._service, command)  # (an AttributeError for what it lacks)
        if not callable(found):
            self._check(command)
            return found
        check = self._check

        def checked(*args: Any, **kwargs: Any) -> Any:
            # checked when called, as a sandboxed plugin's host call is: hasattr() and
            # getattr(svc, name, default) answer without a refusal or a security event
            check(command)
            return found(*args, **kwargs)

        return checked

    def __repr__(self) -> str:
        return f"<{type(self._service).__name__}, each command checked by the host's broker>"
