"""Refusals the host makes to a worker, known again when the plugin passes them on.

A worker's error is the plugin's word (``isolation.identity``). But when the host
refuses something a plugin asked of it over its channel (a host call over its rate
bound, an event payload over its size bound, a call to a plugin that is not
running, a callee's limit hit), the refusal reaches the plugin's code, which may let
it propagate out of its command: the caller should then be told what is true, that
the host refused.

So every such refusal (a denial of the broker's, ``runtime.broker``, and a secret a
Wasm module was not granted, ``isolation.wasm``, among them) leaves the host stamped
with a token (``details["refusal"]``): a random part, which the host remembers for
that plugin (the last :data:`KEPT`), and a digest of everything else the error says.
:func:`vouched` accepts a token once, for the very error it was issued with: a
plugin can neither make one up (the host never issued it) nor put a genuine one on
an error of its own (the digest differs), nor pass the same refusal off twice (it
was spent).
"""

from __future__ import annotations

import collections
import hashlib
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from plugbay.api.errors import PlugbayError, error_from_dict

__all__ = ["KEPT", "TOKEN", "Refusals", "vouched"]

#: the key of an error's details that holds its token
TOKEN: Final = "refusal"
#: refusals remembered per plugin: an older one passed on is shown as the plugin's own
KEPT: Final = 1024
#: what an error says, as the digest covers it (``to_dict``'s keys, but its text)
_SAID: Final = ("type", "code", "plugin", "message", "where", "hint")
_SPENT: Final = object()


def _digest(data: Mapping[str, Any]) -> str:
    """A digest of what the error ``data`` says, its token aside ("" when it cannot be
    read: such an error is never vouched for)."""
    said = {key: data.get(key) for key in _SAID}
    details = data.get("details")
    if isinstance(details, Mapping):
        details = {key: value for key, value in details.items() if key != TOKEN}
    said["details"] = details
    try:
        plain = msgspec.to_builtins(said, str_keys=True)
        return hashlib.sha256(msgspec.json.encode(plain, order="sorted")).hexdigest()[:32]
    except Exception:  # a worker's data the host cannot encode: not its refusal
        return ""


class Refusals:
    """The refusals the host issued to each plugin: the broker's (one per host: every
    host call's refusal, its own denials among them) and a Wasm handle's (a secret its
    module was not granted)."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._issued: dict[str, collections.OrderedDict[str, None]] = {}

    def issue(self, plugin_id: str, error: PlugbayError) -> PlugbayError:
        """A copy of ``error`` stamped for ``plugin_id``: raise it to the plugin. Passed
        on, it stops nothing of the plugin's (a callee's limit hit replaced the callee's
        worker, never the caller's), so ``replace`` is not kept."""
        data = error.to_dict()
        details = {
            key: value
            for key, value in (data.get("details") or {}).items()
            if key not in (TOKEN, "replace")
        }
        data["details"] = details
        token = f"{secrets.token_hex(8)}.{_digest(data)}"
        details[TOKEN] = token
        kept = self._issued.setdefault(plugin_id, collections.OrderedDict())
        kept[token] = None
        if len(kept) > self._kept:
            kept.popitem(last=False)
        return error_from_dict(data)

    def redeem(self, plugin_id: str, token: str) -> bool:
        """Whether ``token`` was issued to ``plugin_id`` and not spent yet (it is now)."""
        kept = self._issued.get(plugin_id)
        # one step, so that two threads passing the same token off spend it once
        return kept is not None and kept.pop(token, _SPENT) is not _SPENT


def vouched(
    data: Mapping[str, Any], error: PlugbayError, plugin_id: str, issued: Callable[[str], bool]
) -> PlugbayError | None:
    """``error`` (read from a worker's ``data``) as the host's own refusal, passed on by
    plugin ``plugin_id``, when its token is one the host issued to that plugin for this
    very error; else None."""
    details = error.details if isinstance(error.details, dict) else {}
    token = details.get(TOKEN)
    if not isinstance(token, str):
        return None
    digest = token.partition(".")[2]
    if not digest or digest != _digest(data) or not issued(token):
        return None
    error.details = {k: v for k, v in details.items() if k not in (TOKEN, "replace")}
    error.details["relayed_by"] = plugin_id
    return error
