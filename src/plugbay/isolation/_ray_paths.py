"""A Ray plugin's own error said with the host's paths (``isolation.ray``).

A worker on a node loads the node's copy of the plugin's code
(``…/<node>/code/<digest>/``), so the line it names where the plugin raised is in that
copy: a file the operator cannot open from the host (on another machine, under a
digest). The host names its own file instead, as for a plugin on this machine.
"""

from __future__ import annotations

from pathlib import Path

from plugbay.api.errors import PlugbayError


def said_here(error: PlugbayError, node_code: Path, host_code: Path) -> None:
    """Rewrite ``error``'s ``where``, ``raised_at`` and traceback from the node's copy of
    the code (``node_code``) to the host's plugin directory (``host_code``), in place."""
    there, here = str(node_code), str(host_code)
    if there == here:
        return
    if error.where and error.where.startswith(there + "/"):
        error.where = here + error.where[len(there) :]
    details = error.details
    raised_at = details.get("raised_at")
    if isinstance(raised_at, dict) and str(raised_at.get("file", "")).startswith(there + "/"):
        details["raised_at"] = {**raised_at, "file": here + raised_at["file"][len(there) :]}
    if isinstance(details.get("traceback"), str):
        details["traceback"] = details["traceback"].replace(there + "/", here + "/")
