"""The author's line of an error the plugin's context raised.

``context.storage`` refusing a value, a typed read of the wrong type, a full store,
an event payload that cannot cross: the context's code raised it, called from the
plugin's code. The plugin's own exceptions name the line they were raised at
(``loading.raised_at``); these name the line of the plugin's code that made the
call, the same inline (``runtime.calling``) and in a worker (``isolation.worker``).
Only an error path asks: a call that succeeds pays nothing.
"""

from __future__ import annotations

import os
from typing import Final

import plugbay.api
from plugbay.api.errors import PlugbayError, StorageFull
from plugbay.isolation import remote_storage
from plugbay.isolation.identity import HOST_ONLY
from plugbay.isolation.loading import raised_at
from plugbay.model.manifest import PluginManifest

__all__ = ["at_the_authors_line"]

#: the context's own code: the plugin API's, and a store the host keeps (``remote_storage``)
_CONTEXT_CODE: Final = (os.path.dirname(plugbay.api.__file__) + os.sep, remote_storage.__file__)


def at_the_authors_line(error: PlugbayError, manifest: PluginManifest | None) -> PlugbayError:
    """``error``, its ``where`` and ``details["raised_at"]`` naming the plugin's line that
    called the context, when the context's code raised it from there; else as it is (the
    plugin's own ``raise``, the host's refusal of a request, an error already placed)."""
    details = error.details
    if manifest is None or not isinstance(details, dict) or "raised_at" in details:
        return error
    if error.code in HOST_ONLY and not isinstance(error, StorageFull):
        return error  # a refusal the host stands behind (a secret): the same on every backend
    at = raised_at(error, manifest)
    if at is None:
        return error
    tb, below = error.__traceback__, None  # the frames under the plugin's innermost one
    while tb is not None:
        if (tb.tb_frame.f_code.co_filename, tb.tb_lineno) == (at["file"], at["line"]):
            below = tb.tb_next
        tb = tb.tb_next
    if below is None:
        return error
    while below is not None:
        if not below.tb_frame.f_code.co_filename.startswith(_CONTEXT_CODE):
            return error
        below = below.tb_next
    if error.where is not None:
        details.setdefault("context_where", error.where)  # the store's file, the emit
    error.where = f"{at['file']}:{at['line']}"
    details["raised_at"] = at
    return error
