"""Whether a network grant is one a sandbox can enforce: an address and a port.

A sandboxed worker's kernel layers allow TCP connect by *port* only (Landlock
has no rule for an address), and none of them sees the address connected to:
seccomp refuses ``socket()`` families and never reads ``connect()``'s address.
The address is checked by the worker's audit hook alone (``isolation.guard``),
which a plugin calling ``connect(2)`` through ``ctypes`` goes around. A grant of
any port (``network:127.0.0.1:*``) would need Landlock's port rule left off, so
that audit hook would be all that stands between the plugin and every address
and port: it is refused where it is written instead (the manifest, ``plugbay
grant``, ``[policy.grants]``) and when a sandboxed plugin is loaded.

A grant naming a host (``network:example.org:443``) is refused alike: the audit
hook compares the address a connection is made to, which is the resolved IP
address whenever a plugin connects by name (``socket.create_connection``, any
HTTP client), so such a grant would allow nothing; and the worker's sandbox
policy takes an IP address only. A plugin the host trusts (inline, or a worker
the policy does not sandbox) has no audit hook and no Landlock: nothing checks
its connections, so it needs no network grant, by name or by address.
"""

from __future__ import annotations

import ipaddress

__all__ = ["network_refusal", "port_refusal"]


def port_refusal(grant: str) -> tuple[str, str] | None:
    """(message, hint) when ``grant`` (``"127.0.0.1:*"``, with or without ``network:``)
    names no port a sandbox can allow; None when it names one (1-65535)."""
    address, sep, port = grant.removeprefix("network:").rpartition(":")
    if sep and address and port.isdigit() and 0 < int(port) < 65536:
        return None
    example = f"{address or '127.0.0.1'}:6667"
    return (
        f"network grant '{grant.removeprefix('network:')}' names no port: a sandboxed "
        "plugin's network grant needs one (ADDRESS:PORT), since the sandbox allows a TCP "
        "connection by its port (Landlock) and no kernel layer of it sees the address",
        f"write one grant a port, e.g. network:{example} (and network:{address or '127.0.0.1'}"
        ":6697 for a second port); a plugin the host trusts (inline) is not confined and "
        "needs no network grant",
    )


def network_refusal(grant: str) -> tuple[str, str] | None:
    """(message, hint) when ``grant`` (with or without ``network:``) is not one a sandbox
    can honour: it names no port (:func:`port_refusal`) or a host name rather than an IP
    address (``example.org:443``); None for ``ADDRESS:PORT`` (``[::1]:443``, ``*:443``)."""
    refusal = port_refusal(grant)
    if refusal is not None:
        return refusal
    written = grant.removeprefix("network:")
    host, _, port = written.rpartition(":")
    address = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        if address != "*":
            ipaddress.ip_address(address)
    except ValueError:
        return (
            f"network grant '{written}' names a host, not an IP address: a sandboxed "
            "plugin's network grant needs an address (ADDRESS:PORT), since the sandbox "
            "checks the address a connection is made to, and a plugin connecting by name "
            "connects to the addresses the name resolves to",
            f"grant each address the name resolves to, e.g. network:ADDRESS:{port} for each "
            f"address 'getent ahosts {address}' lists (grant again if they change); a "
            "plugin the host trusts (inline) is not confined and needs no network grant",
        )
    return None
