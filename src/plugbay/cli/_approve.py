"""How the operator approves a permission a plugin asks for, in the words a CLI view
prints beside it (``plugbay info``, ``plugbay grants``).

Most asks are approved by granting them as written. A network ask no sandbox can honour
(``network:127.0.0.1:*``, ``network:example.org:443``) is refused by ``plugbay grant``,
so the view names what is granted instead, or trusting the plugin inline.
"""

from __future__ import annotations

from plugbay.isolation.network_grants import network_refusal

__all__ = ["approve_hint", "ungrantable"]


def ungrantable(plugin_id: str, permission: str) -> str | None:
    """For an ask ``plugbay grant`` refuses as written (a network grant with no port, or
    naming a host), what to grant or trust instead; None for one it takes."""
    if not permission.startswith("network:"):
        return None
    refusal = network_refusal(permission)
    if refusal is None:
        return None
    return (
        f"'plugbay grant' refuses it as written; instead, {refusal[1]} "
        f'(inline = ["{plugin_id}"] under [policy] in the host\'s config file, '
        "plugbay.toml, then restart the host)"
    )


def approve_hint(plugin_id: str, permission: str) -> str:
    """How to approve ``permission`` for ``plugin_id``: the grant itself, or what to
    grant or trust instead (:func:`ungrantable`)."""
    instead = ungrantable(plugin_id, permission)
    return instead or f"approve with 'plugbay grant {plugin_id} {permission}'"
