"""Host data: the permission each command of a host-data provider needs, and what
requiring its service needs before any command is named.

One table for the broker (``runtime.broker``), which checks every call against its own
command, and for a worker told at load what its plugin may require
(``isolation.offered_services``): ``require`` is allowed when some command of the
provider is open to the plugin, so a plugin granted only ``host:metrics-read`` can
require ``plugbay.host`` to ask its ``health``, and is refused at its other commands.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

__all__ = ["HOST_DATA", "HOST_SERVICE_PERMISSION", "needed_to_require", "permissions_of"]

#: what the commands of the host's own service (``plugbay.host``) need but the few
#: named in :data:`HOST_DATA`
HOST_SERVICE_PERMISSION: Final = "host:state-read"

#: (provider, command) → the permission it needs; "*" stands for any other command
HOST_DATA: Final[Mapping[tuple[str, str], str | None]] = {
    ("core.security", "trail"): "host:audit-read",
    ("core.security", "verify"): "host:audit-read",
    ("core.security", "record"): "host:audit-write",
    ("core.security", "*"): "host:audit-read",
    ("system.logging", "log"): None,  # writing its own line: the source is set from the channel
    ("system.logging", "*"): "host:logs-read",
    ("plugbay.host", "health"): "host:metrics-read",
    ("plugbay.host", "alerts"): "host:metrics-read",
    ("plugbay.host", "*"): HOST_SERVICE_PERMISSION,
}


def permissions_of(provider: str) -> list[str | None]:
    """What each command of ``provider`` needs (None: nothing); empty: not host data."""
    return [permission for (name, _), permission in HOST_DATA.items() if name == provider]


def needed_to_require(
    provider: str, effective: Collection[str], asked: Collection[str]
) -> tuple[str, bool] | None:
    """What a plugin holding ``effective`` lacks to require a service of ``provider``
    (None: some command of it needs no permission, or one the plugin holds): the
    permission to name, one of them its manifest asks for (``asked``) if any, else the
    one its other commands need, and whether it asked for it."""
    needs = permissions_of(provider)
    if not needs or None in needs or any(p in effective for p in needs):
        return None
    named = next((p for p in needs if p is not None and p in asked), None)
    if named is not None:
        return named, True
    other = HOST_DATA[(provider, "*")]
    assert other is not None  # (None in needs returned above)
    return other, False
