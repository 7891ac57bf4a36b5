"""Scoped API tokens in the state database: a digest, scopes, a note, dates (``web.scopes``)."""

from __future__ import annotations

import json
import time
from typing import Any

__all__ = ["ApiTokens"]


class ApiTokens:
    """The ``api_tokens`` table; mixed into :class:`~plugbay.state.StateStore`."""

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def add_api_token(
        self, token_id: str, digest: str, scopes: list[str], note: str | None, expires: float | None
    ) -> None:
        """Keep a scoped API token by the SHA-256 of its secret (never the secret)."""
        self._write(
            "INSERT INTO api_tokens (id, digest, scopes, note, created, expires) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (token_id, digest, json.dumps(scopes), note, time.time(), expires),
        )

    def api_tokens(self) -> list[dict[str, Any]]:
        """Every scoped token (revoked and expired ones too), oldest first; no digests."""
        rows = self._read(
            "SELECT id, scopes, note, created, expires, revoked, last_used FROM api_tokens "
            "ORDER BY created, id"
        )
        keys = ("id", "scopes", "note", "created", "expires", "revoked", "last_used")
        return [{**dict(zip(keys, r, strict=True)), "scopes": json.loads(r[1])} for r in rows]

    def api_token_by_digest(self, digest: str) -> dict[str, Any] | None:
        """The token whose secret hashes to ``digest`` (revoked or expired ones too)."""
        rows = self._read(
            "SELECT id, scopes, expires, revoked FROM api_tokens WHERE digest=?", (digest,)
        )
        if not rows:
            return None
        token_id, scopes, expires, revoked = rows[0]
        return {"id": token_id, "scopes": json.loads(scopes), "expires": expires,
                "revoked": revoked}  # fmt: skip

    def note_api_token_use(self, token_id: str, when: float) -> None:
        """Keep when the token was last used (``token list``'s ``last_used``)."""
        self._write(
            "UPDATE api_tokens SET last_used=? WHERE id=? AND (last_used IS NULL OR last_used<?)",
            (when, token_id, when),
        )

    def revoke_api_token(self, token_id: str) -> bool:
        """Revoke a token at once; ``False`` when there is no such token still valid."""
        changed = self._write(
            "UPDATE api_tokens SET revoked=? WHERE id=? AND revoked IS NULL",
            (time.time(), token_id),
        )
        return changed > 0
