"""The API's bearer token: made on first start, kept mode 0600 in the state directory.

One token per state directory. ``plugbay run`` prints it the first time it is
made; ``plugbay token`` shows it again, ``plugbay token --rotate`` replaces it
(a running host picks the new one up at its next request: it reads the file's
modification time, not the token, on each request).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Final

from plugbay.api.errors import StateError

__all__ = ["TOKEN_FILE", "TokenFile", "fingerprint"]

TOKEN_FILE: Final = "api-token"


def fingerprint(token: str) -> str:
    """A short, non-secret name for a token (for logs: which token a caller used)."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


class TokenFile:
    """The token of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / TOKEN_FILE
        self._token: str | None = None
        self._stamp: tuple[int, int] | None = None

    def ensure(self) -> tuple[str, bool]:
        """The token, and whether it was made just now (then it is shown once)."""
        try:
            return self.read(), False
        except FileNotFoundError:
            return self._write(), True

    def rotate(self) -> str:
        """A new token; the old one stops working at once."""
        return self._write()

    def read(self) -> str:
        """The current token (raises FileNotFoundError when none was made yet)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error("cannot read", exc) from None
        stamp = (st.st_mtime_ns, st.st_ino)
        if self._token is not None and stamp == self._stamp:
            return self._token
        if st.st_mode & 0o077:
            raise StateError(
                f"the API token file is readable by others (mode {st.st_mode & 0o777:o})",
                where=str(self.path),
                hint=f"run 'chmod 600 {self.path}', or 'plugbay token --rotate' for a new one",
            )
        try:
            token = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise self._error("cannot read", exc) from None
        if len(token) < 32:
            raise StateError(
                "the API token file does not hold a token",
                where=str(self.path),
                hint="run 'plugbay token --rotate' to make a new one",
            )
        self._token, self._stamp = token, stamp
        return token

    def matches(self, given: str) -> bool:
        """Whether ``given`` is the current token (constant time)."""
        try:
            token = self.read()
        except (FileNotFoundError, StateError):
            return False
        return hmac.compare_digest(given.encode(), token.encode())

    def _write(self) -> str:
        token = secrets.token_urlsafe(32)
        tmp = self.path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(token + "\n")
            os.chmod(tmp, 0o600)  # whatever the umask said
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._error("cannot write", exc) from None
        self._token, self._stamp = None, None
        return token

    def _error(self, doing: str, exc: OSError | UnicodeDecodeError) -> StateError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return StateError(
            f"{doing} the API token file: {reason}",
            where=str(self.path),
            hint="check the permissions of the state directory, or choose another with --state",
        )
