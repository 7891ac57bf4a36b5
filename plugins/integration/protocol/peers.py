"""Where the ``send`` command may connect: the destinations the manifest declares under
``[permissions] network`` (``127.0.0.1:*`` as shipped), and nowhere else.

The gateway runs trusted inline (a sandbox lets nothing listen), so no sandbox keeps
its client to those: it keeps to them itself, and refuses any other address in the
words the sandbox uses, with what would allow it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeAlias

from plugbay import PermissionDenied

__all__ = ["MANIFEST", "LookupTimeout", "declared", "granted_address"]

MANIFEST: Final = Path(__file__).with_name("plugin.toml")

#: ``(host, port)`` → getaddrinfo's entries; the event loop's resolver unless a test gives one
Lookup: TypeAlias = Callable[[str, int], Awaitable[Sequence[tuple[Any, ...]]]]


class LookupTimeout(ConnectionError):
    """A peer's host name was not resolved within the caller's timeout.

    A ``ConnectionError``, not a ``TimeoutError``, for the reason ``wire.PeerTimeout``
    gives: the host would report its own call timeout instead of this one.
    """


async def _getaddrinfo(host: str, port: int) -> Sequence[tuple[Any, ...]]:
    return await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)


def declared(manifest: Path = MANIFEST) -> tuple[str, ...]:
    """The ``[permissions] network`` entries of ``manifest`` (``HOST:PORT``, ``HOST:*``)."""
    with manifest.open("rb") as file:
        network = tomllib.load(file).get("permissions", {}).get("network", [])
    return tuple(str(entry) for entry in network)


def _endpoint(entry: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` → (address, port); a port of ``*`` is -1 (any port)."""
    host, _, port = entry.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port) if port.isdigit() else -1


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def granted_address(
    plugin_id: str,
    host: str,
    port: int,
    network: tuple[str, ...],
    timeout: float,
    lookup: Lookup = _getaddrinfo,
    *,
    left: float | None = None,
) -> str:
    """The address to connect to for ``host:port``: ``host`` when it is an IP address,
    else the first of its addresses that ``network`` declares. Raises PermissionDenied
    when ``network`` declares none of them, ConnectionError when ``host`` has no address,
    :class:`LookupTimeout` when looking ``host`` up takes longer than ``timeout`` seconds
    (a resolver that does not answer would otherwise hold the caller past its timeout;
    ``left``, when given, is what is left of ``timeout`` as the lookup starts).
    """
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            async with asyncio.timeout(timeout if left is None else left):
                found = await lookup(host, port)
        except TimeoutError:
            raise LookupTimeout(
                f"cannot reach peer {_where(host, port)}: looking up {host} took longer "
                f"than {timeout:g} s (is the resolver answering? or give the peer's "
                "IP address as host)"
            ) from None
        except OSError as exc:  # (socket.gaierror)
            raise ConnectionError(
                f"cannot reach peer {_where(host, port)}: {exc.strerror or exc}"
            ) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    allowed = {_endpoint(entry) for entry in network}
    for address in addresses:
        if {(address, port), ("*", port), (address, -1), ("*", -1)} & allowed:
            return address
    wanted = _where(addresses[0], port)
    operation, permission = f"connecting to {wanted}", f"network:{wanted}"
    raise PermissionDenied(
        f"{plugin_id} denied {operation}: its manifest declares only "
        f"{', '.join(f'network:{entry}' for entry in network) or 'no network destination'}",
        plugin=plugin_id,
        hint=f"declare it under [permissions] and have the operator run "
        f"'plugbay grant {plugin_id} {permission}'",
        details={"operation": operation, "permission": permission, "layer": "manifest"},
    )
