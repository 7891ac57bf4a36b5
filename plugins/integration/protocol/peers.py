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
from pathlib import Path
from typing import Final

from plugbay import PermissionDenied

__all__ = ["MANIFEST", "declared", "granted_address"]

MANIFEST: Final = Path(__file__).with_name("plugin.toml")


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


async def granted_address(plugin_id: str, host: str, port: int, network: tuple[str, ...]) -> str:
    """The address to connect to for ``host:port``: ``host`` when it is an IP address,
    else the first of its addresses that ``network`` declares. Raises PermissionDenied
    when ``network`` declares none of them, ConnectionError when ``host`` has no address.
    """
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
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
