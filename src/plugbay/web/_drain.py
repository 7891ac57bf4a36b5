"""While the host stops, new requests are answered 503 with ``Retry-After``.

``plugbay run`` on SIGTERM stops starting plugins, sets the host's phase to
``stopping``, lets the calls in flight finish (bounded) and only then closes the
server: a client in that window learns to come back, rather than seeing a reset
connection or a bare 500. ``/healthz`` and ``/readyz`` still answer (alive;
``stopping``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from starlette.types import ASGIApp, Receive, Scope, Send

from plugbay.web._errors import error_response, http_error
from plugbay.web.scopes import route_path

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = ["Draining"]

#: seconds a client is told to wait: about the time a restart takes
RETRY_AFTER: Final = 5
_ALWAYS: Final = frozenset({"/healthz", "/readyz"})


class Draining:
    """ASGI: passes requests to ``app`` unless ``host`` is stopping."""

    def __init__(self, app: ASGIApp, host: Host) -> None:
        self.app = app
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.host.phase in ("stopping", "stopped")
            and route_path(scope) not in _ALWAYS  # (the path within a mount's prefix)
        ):
            error = http_error(
                "host_stopping",
                "the host is stopping; this request was not run",
                hint=f"retry in {RETRY_AFTER} s: a restarted host will answer it",
            )
            response = error_response(error, 503, {"Retry-After": str(RETRY_AFTER)})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
