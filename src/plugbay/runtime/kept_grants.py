"""Grants kept in the state that no sandbox can honour, said once as the host starts.

A network grant without a port (``network:127.0.0.1:*``) or naming a host rather than
an IP address (``network:example.org:443``) is refused where it is written
(``isolation.network_grants``), but one kept by an older plugbay is still in the state
database. It allows a sandboxed plugin no connection (a grant allows what a manifest
asks for word for word, and a manifest asking for one is not loaded sandboxed), so the
plugin is refused a connection its operator believes granted. The host's start says, in
its log (``host.log`` under ``plugbay run``), every such grant and the command that takes
it back.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable

from plugbay.isolation.network_grants import network_refusal
from plugbay.state import StateStore

__all__ = ["unhonourable_grants", "warn_of_unhonourable_grants"]


def unhonourable_grants(state: StateStore, plugin_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(plugin id, permission) of each network grant kept for ``plugin_ids`` that no
    sandbox can honour."""
    known = set(plugin_ids)
    return [
        (plugin_id, permission)
        for plugin_id, permission in state.network_grants()  # one read, not one a plugin
        if plugin_id in known and network_refusal(permission) is not None
    ]


def warn_of_unhonourable_grants(state: StateStore, plugin_ids: Iterable[str]) -> None:
    """One warning in the host's log naming each such grant and how to revoke it."""
    found = unhonourable_grants(state, plugin_ids)
    if not found:
        return
    grants = ", ".join(f"{permission} of {plugin_id}" for plugin_id, permission in found)
    revokes = "; ".join(
        f"plugbay revoke {plugin_id} {shlex.quote(permission)}" for plugin_id, permission in found
    )
    logging.getLogger("plugbay.host").warning(
        "the state keeps network grants no sandbox can honour (each names no port, or a "
        "host rather than an IP address; an older plugbay took them): %s. They allow a "
        "sandboxed plugin no connection. Take each back: %s; then grant ADDRESS:PORT for "
        "what it connects to ('plugbay info ID' lists what it asks for)",
        grants,
        revokes,
    )
