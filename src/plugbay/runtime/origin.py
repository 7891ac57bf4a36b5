"""Who raised an error that came out of an in-process plugin's command.

A worker's error is judged where it arrives (``isolation.identity``): the plugin's own
unless the host can stand behind it. An inline plugin's error needs no judging, since
its traceback says where it was raised: in the plugin's own code (``raise
ConfigError(...)`` in a command: the plugin's failure, not the request's), or in the
host's, reached from the plugin's code (a refusal of something the plugin asked of the
host through its context, which it let propagate). The mark goes in the error's
``details`` (``raised_by``, ``relayed_by``: the same as a worker's error gets), and
the HTTP API answers for the plugin, not the request (``web._errors.status_for``).

A refusal raised by the plugin API's own code (``plugbay.api``: a storage key, an event
payload that is not plain data), reached from the plugin's code without passing through
the host's, is the plugin's own (``raised_by``), as a sandboxed plugin's is: that code
runs in its worker, on the plugin's data, where the host cannot stand behind it. A kind
only the host may raise (a secret not granted, a payload over its bound) stays a refusal
passed on, as the host vouches for it from a worker too (``isolation.identity``).

Only the call path's error branch asks this: a call that succeeds pays nothing.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Final

import plugbay.api
from plugbay.api.errors import PlugbayError
from plugbay.isolation.identity import HOST_ONLY
from plugbay.isolation.loading import raised_at
from plugbay.model.manifest import PluginManifest

__all__ = ["RAISED_BY", "RELAYED_BY", "mark_origin"]

#: the details key naming the plugin whose own code raised the error
RAISED_BY = "raised_by"
#: the details key naming the plugin that passed on a refusal of the host's
RELAYED_BY = "relayed_by"
#: the plugin API's code: a sandboxed plugin runs it in its own worker
_API_DIR: Final = os.path.dirname(plugbay.api.__file__) + os.sep  # as code objects name it


def mark_origin(error: PlugbayError, plugin_id: str, manifest: PluginManifest) -> None:
    """Mark ``error``, which a call of ``plugin_id`` failed with, as the plugin's own or as
    a refusal it passed on; leave it as it is when it never went through the plugin's
    code (the host's own refusal of the call: its parameters, its result, a crash) or
    was marked already (a worker's error, judged; a nested call's, marked there)."""
    details = error.details
    if not isinstance(details, dict) or RAISED_BY in details or RELAYED_BY in details:
        return
    at = raised_at(error, manifest)
    if at is None:
        return
    tb, plugins = error.__traceback__, None  # the plugin's innermost frame
    while tb is not None:
        if (tb.tb_frame.f_code.co_filename, tb.tb_lineno) == (at["file"], at["line"]):
            plugins = tb
        tb = tb.tb_next
    own = plugins is not None and (plugins.tb_next is None or _in_the_api(plugins.tb_next, error))
    details[RAISED_BY if own else RELAYED_BY] = plugin_id


def _in_the_api(tb: TracebackType | None, error: PlugbayError) -> bool:
    """Whether ``error``, of a kind the host does not vouch for, was raised by the plugin
    API's code alone from the plugin's frame on (``tb``): what a worker would run."""
    if error.code in HOST_ONLY:
        return False
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_API_DIR):
            return False
        tb = tb.tb_next
    return True
