"""The ``plugin`` filter of the list routes (history, logs, alerts), in one rule.

A plugin the host knows, or one it has a record of in its state (an uninstalled
plugin's history outlives it), filters the list, which may then be empty; an id the
host has never seen is a 404 saying so, with the near names it knows, as
``GET /api/v1/plugins/{id}`` answers: an empty list would read as "nothing happened
to it" when the id is mistyped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugbay.api.errors import PlugbayError

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = ["known_to", "recorded"]


def known_to(host: Host, plugin_id: str | None) -> bool:
    """Whether ``plugin_id`` is a plugin of ``host`` now (``None``, no filter: ``True``);
    ``False`` for one it only has records of; else the host's ``plugin_not_found``."""
    if plugin_id is None:
        return True
    try:
        host.plugin(plugin_id)
    except PlugbayError as exc:
        if exc.code != "plugin_not_found" or not recorded(host, plugin_id):
            raise
        return False
    return True


def recorded(host: Host, plugin_id: str) -> bool:
    """Whether the host's state has any history of ``plugin_id`` (an uninstalled plugin)."""
    return host.state is not None and bool(host.state.history(plugin_id, limit=1))
