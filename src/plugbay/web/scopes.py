"""Scoped API tokens: what a token may do, checked on every request before any handler.

The host's own token (``api-token``, ``plugbay token``) may do everything. Scoped
tokens are made with ``plugbay token create --scope … [--expires …]`` and kept in the
state database as the SHA-256 of their secret; the secret is shown once. A token has
one or more scopes:

``read``
    every GET (plugins, info, config, history, logs, metrics, the dashboard's pages),
    but recorded calls.
``call:ID``
    what ``read`` may, calling plugin ID's commands (``POST …/plugins/ID/commands/…``,
    one call or a batch), and reading ID's recorded calls.
``admin``
    everything the host's own token may.

Recorded and mirrored calls (the flight recorder's file, a shadow's examples) hold
what callers sent and were answered: the users' data. They are for a token that may
call the plugin, or ``admin`` (:func:`sees_calls`): ``GET …/plugins/ID/recording``
needs ``call:ID`` here, before any handler; a shadow's comparison is read with
``read``, its examples withheld from a token that may not call the plugin
(``web._upgrades``).

A revoked token stops working at its next request (each request reads its row); an
expired one too. Each refusal names the scope that would be needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import PlugbayError

if TYPE_CHECKING:
    from plugbay.state import StateStore

__all__ = [
    "PREFIX",
    "Access",
    "allows",
    "create_token",
    "digest",
    "needed_scope",
    "parse_expiry",
    "parse_scope",
    "refusal_hint",
    "route_path",
    "scoped_access",
    "sees_calls",
]

PREFIX: Final = "pbt_"
_SAFE: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_CALL: Final = re.compile(r"^/api/v1/plugins/([^/]+)/commands/[^/]+(/batch)?$")
#: reads whose whole answer is a plugin's recorded calls (see the module docstring)
_RECORDED: Final = re.compile(r"^/api/v1/plugins/([^/]+)/recording$")
_PLUGIN_ID: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SPAN: Final = re.compile(r"^(\d+)\s*([smhdw])$")
_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, slots=True)
class Access:
    """Who a valid token is and what it may do."""

    token_id: str
    scopes: frozenset[str]


def digest(token: str) -> str:
    """What the state keeps of a token: its SHA-256 (a token is 32 random bytes, so a
    fast hash is enough; there is nothing to guess)."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scope(text: str) -> str:
    """``read``, ``call:ID`` or ``admin``; anything else is refused with the forms."""
    scope = text.strip()
    if scope in ("read", "admin"):
        return scope
    kind, _, plugin_id = scope.partition(":")
    if kind == "call" and _PLUGIN_ID.match(plugin_id):
        return scope
    raise PlugbayError(
        f"'{text}' is not a token scope",
        hint="use read, call:PLUGIN_ID (e.g. call:extension.processor) or admin",
    )


def parse_expiry(text: str | None, *, now: float | None = None) -> float | None:
    """When a token stops working: ``30d``, ``12h``, ``45m``, ``2w``, a date or date-time
    (ISO 8601, local time unless it says otherwise), or ``never`` / None."""
    if text is None or text.strip().lower() == "never":
        return None
    now = time.time() if now is None else now
    spelled = text.strip().lower()
    span = _SPAN.match(spelled)
    if span is not None:
        seconds = int(span.group(1)) * _SECONDS[span.group(2)]
        if seconds <= 0:
            raise PlugbayError(f"'{text}' would expire at once", hint="give a span above 0")
        return now + seconds
    try:
        when = datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise PlugbayError(
            f"'{text}' is not an expiry",
            hint="use a span (30d, 12h, 45m, 2w), a date (2027-01-31), a date-time "
            "(2027-01-31T18:00), or never",
        ) from None
    if when <= now:
        raise PlugbayError(f"'{text}' is in the past", hint="give a time in the future")
    return when


def create_token(
    state: StateStore, scopes: Iterable[str], *, expires: float | None, note: str | None
) -> tuple[str, str]:
    """A new token: ``(token id, secret)``. Only its digest is kept; show the secret once."""
    chosen = sorted({parse_scope(s) for s in scopes})
    if not chosen:
        raise PlugbayError("a token needs a scope", hint="pass --scope read|call:ID|admin")
    token_id = secrets.token_hex(4)
    secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    state.add_api_token(token_id, digest(secret), chosen, note, expires)
    return token_id, secret


def scoped_access(state: StateStore, given: str, *, now: float | None = None) -> Access | str:
    """The access of a scoped token, or why it has none (a sentence for the 401)."""
    if not given.startswith(PREFIX):
        return "the bearer token is not this host's token (wrong, or rotated since)"
    row = state.api_token_by_digest(digest(given))
    if row is None:
        return "the token is not one this host made"
    if row["revoked"] is not None:
        return f"the token {row['id']} was revoked"
    when = time.time() if now is None else now
    if row["expires"] is not None and row["expires"] <= when:
        return f"the token {row['id']} expired"
    _note_use(state, str(row["id"]), when)
    return Access(str(row["id"]), frozenset(row["scopes"]))


def refusal_hint(given: str) -> str:
    """What to do about a refused token: a scoped one (``pbt_…``) is replaced by a new
    scoped one, never by the host's own token, which may do everything."""
    if given.startswith(PREFIX):
        return (
            "ask whoever runs the host for a new token: 'plugbay token create --scope …' on "
            "the host's machine makes one ('plugbay token list' shows this one's scopes)"
        )
    return "'plugbay token' on the host's machine shows the current one"


#: when each token's use was last written, by state database and token id: at most one
#: write a minute per token, not one per request
_NOTED: dict[tuple[int, str], float] = {}
USE_RESOLUTION: Final = 60.0


def _note_use(state: StateStore, token_id: str, when: float) -> None:
    """Keep when ``token_id`` was last used, to the minute; a state that cannot be
    written (a read-only disk, a full one) keeps none, and the request goes on."""
    key = (id(state), token_id)
    if when - _NOTED.get(key, -USE_RESOLUTION) < USE_RESOLUTION:
        return
    _NOTED[key] = when
    with contextlib.suppress(PlugbayError, sqlite3.Error):
        state.note_api_token_use(token_id, when)


def route_path(request: MutableMapping[str, Any]) -> str:
    """The path of an ASGI ``request`` within the app: the one the API's routes, and
    the rules here, are written for (``/api/v1/...``). Mounted under a prefix
    (``Mount("/plugbay", app=web.asgi)``), ``path`` keeps the prefix and ``root_path``
    names it; the prefix is taken off as Starlette's own routing does
    (``starlette._utils.get_route_path``), so the scope checked is the one of the
    route that will answer."""
    path: str = request["path"]
    root: str = request.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if len(path) == len(root):
        return "/"
    return path[len(root) :] if path[len(root)] == "/" else path


def needed_scope(method: str, path: str) -> str:
    """The narrowest scope that allows ``method path`` (``path``: a :func:`route_path`)."""
    if method in _SAFE:
        recorded = _RECORDED.match(path) if method != "OPTIONS" else None
        return f"call:{recorded.group(1)}" if recorded is not None else "read"
    call = _CALL.match(path)
    if method == "POST" and call is not None:
        return f"call:{call.group(1)}"
    return "admin"


def allows(scopes: frozenset[str], method: str, path: str) -> bool:
    """Whether a token with ``scopes`` may ``method path``."""
    if "admin" in scopes:
        return True
    needed = needed_scope(method, path)
    if needed == "read":
        return bool(scopes)  # every scope reads
    return needed in scopes


def sees_calls(scopes: frozenset[str], plugin_id: str) -> bool:
    """Whether a token with ``scopes`` may see ``plugin_id``'s recorded or mirrored calls
    (their parameters and answers): one that may call it, or ``admin``."""
    return "admin" in scopes or f"call:{plugin_id}" in scopes
