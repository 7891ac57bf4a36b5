"""Refusals the host makes to a worker, known again when the plugin passes them on.

A worker's error is the plugin's word (``isolation.identity``). But when the host
refuses something a plugin asked of it over its channel (a host call over its rate
bound, an event payload over its size bound, a call to a plugin that is not
running, a callee's limit hit), the refusal reaches the plugin's code, which may let
it propagate out of its command: the caller should then be told what is true, that
the host refused.

So every such refusal (a denial of the broker's, ``runtime.broker``, and a secret a
Wasm module was not granted, ``isolation.wasm``, among them) leaves the host stamped
with a token (``details["refusal"]``): a serial number, a digest of everything else
the error says, and a keyed hash of both and of the plugin's id, under a key that
never leaves the host. :func:`vouched` accepts a token once, for the very error it
was issued with: a plugin can neither make one up (it cannot sign), nor put a
genuine one on an error of its own (the digest differs), nor pass another plugin's
off (the id differs), nor the same refusal twice (its serial was spent).

The host keeps nothing per refusal it issues, only the serials spent (the last
:data:`KEPT` per plugin; a token older than all of them is spent too): a plugin
whose host calls fail by the thousand neither grows the host's memory nor makes an
earlier refusal it lets propagate look like its own.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from plugbay.api.errors import PlugbayError, error_from_dict

__all__ = ["KEPT", "TOKEN", "Refusals", "vouched"]

#: the key of an error's details that holds its token
TOKEN: Final = "refusal"
#: spent serials remembered per plugin: a token older than all of them is spent too
KEPT: Final = 1024
#: what an error says, as the digest covers it (``to_dict``'s keys, but its text)
_SAID: Final = ("type", "code", "plugin", "message", "where", "hint")


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
        self._key = secrets.token_bytes(32)
        self._serials: dict[str, itertools.count[int]] = {}
        #: per plugin: serials below the floor are spent, and those spent above it
        self._spent: dict[str, tuple[int, set[int]]] = {}
        self._lock = threading.Lock()  # a Ray plugin's calls may come from other threads

    def _sign(self, plugin_id: str, serial: str, digest: str) -> str:
        said = f"{plugin_id}\0{serial}\0{digest}".encode()
        return hmac.new(self._key, said, hashlib.sha256).hexdigest()[:32]

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
        serials = self._serials.get(plugin_id)
        if serials is None:
            serials = self._serials.setdefault(plugin_id, itertools.count())
        serial, digest = str(next(serials)), _digest(data)
        details[TOKEN] = f"{serial}-{self._sign(plugin_id, serial, digest)}.{digest}"
        return error_from_dict(data)

    def redeem(self, plugin_id: str, token: str) -> bool:
        """Whether ``token`` was issued to ``plugin_id`` and not spent yet (it is now)."""
        if not token.isascii() or len(token) > 128:  # the plugin's string: no signing it
            return False
        stamp, _, digest = token.partition(".")
        serial, _, mac = stamp.partition("-")
        if not (serial.isdecimal() and len(serial) < 20 and serial == str(int(serial))):
            return False
        if not hmac.compare_digest(mac, self._sign(plugin_id, serial, digest)):
            return False
        number = int(serial)
        with self._lock:  # two threads passing the same token off spend it once
            floor, spent = self._spent.setdefault(plugin_id, (0, set()))
            if number < floor or number in spent:
                return False
            spent.add(number)
            if len(spent) > self._kept:  # bounded: the oldest spent becomes the floor
                oldest = min(spent)
                spent.discard(oldest)
                self._spent[plugin_id] = (oldest + 1, spent)
            return True

    def kept_for(self, plugin_id: str) -> int:
        """How many serials the host keeps for ``plugin_id`` (at most :data:`KEPT`)."""
        return len(self._spent.get(plugin_id, (0, set()))[1])


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
