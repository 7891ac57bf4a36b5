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
"""

from __future__ import annotations

__all__ = ["port_refusal"]


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
