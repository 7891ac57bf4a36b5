"""Asking a Ray cluster's head who it is before the host joins it (``isolation._ray_join``).

The TCP knock of ``ray_head.head_unreachable`` tells that something takes connections at
``[ray] address``; it does not tell that it is a Ray head, nor that the host and the
cluster agree on token authentication. Ray itself says neither well: a port that is not
a Ray head makes ``ray.init`` wait (and the host's start with it), a cluster that wants a
token the host lacks makes it retry for 20 s and then say "Failed to connect", and a host
that sends a token to a cluster without token authentication joins, then refuses its
nodes' calls, so every Ray plugin's agent or actor ends before it ran.

So the host asks the head once, in a child process bounded in time (Ray's GCS client,
one read of its key-value store): first sending no token, which tells whether the
cluster wants one; then, when the host would send one, with the host's token. Each
mismatch is refused naming what each side has and what to set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Final

__all__ = ["head_refusal", "host_auth"]

#: seconds the head has to answer Ray's own client (the child process, Ray's import included)
PROBE_SECONDS: Final = 15.0

#: one read of the head's key-value store; prints "open", "token" (a token is wanted or
#: refused) or "error WHAT"
_PROBE: Final = """
import sys
try:
    from ray._raylet import GcsClient
    GcsClient(address=sys.argv[1]).internal_kv_get(b"plugbay-probe", b"plugbay", timeout=5)
except Exception as exc:
    words = " ".join(str(exc).split()) or type(exc).__name__
    print("token" if type(exc).__name__ == "AuthenticationError" else "error", words[:300])
else:
    print("open")
"""

_SET_TOKEN: Final = (
    "put the cluster's token in the host's environment (RAY_AUTH_TOKEN, or a file named by "
    "RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token) and set RAY_AUTH_MODE=token"
)


def _token_source() -> str | None:
    """Where Ray would read this host's token from, or None (no token)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if named and Path(named).is_file():
        return f"RAY_AUTH_TOKEN_PATH ({named})"
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def host_auth(address: str) -> tuple[bool, str]:
    """Whether Ray will send a token from this host when it joins ``address``, and why:
    ``RAY_AUTH_MODE`` when set; else, for ``"auto"`` (with no ``RAY_ADDRESS``), Ray turns
    token authentication on by itself when it finds a token (``~/.ray/auth_token``)."""
    mode = os.environ.get("RAY_AUTH_MODE", "").strip()
    if mode:
        return mode.lower() == "token", f"RAY_AUTH_MODE={mode}"
    source = _token_source()
    if address == "auto" and os.environ.get("RAY_ADDRESS", "auto") in ("", "auto") and source:
        return True, (
            f'a token in {source}, which Ray uses by itself for [ray] address = "auto" '
            "when RAY_AUTH_MODE is not set"
        )
    return False, "RAY_AUTH_MODE is not set" + (
        "" if source is None else f" (the token in {source} is used only with it)"
    )


def _ask(where: str, token: bool) -> tuple[str, str]:
    """("open" | "token" | "error" | "silent", what was said) from the head at ``where``."""
    env = {**os.environ, "RAY_AUTH_MODE": "token" if token else "disabled"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, where],
            capture_output=True,
            text=True,
            timeout=PROBE_SECONDS,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "silent", f"no answer to Ray's client within {PROBE_SECONDS:g} s"
    lines = done.stdout.strip().splitlines()
    said = lines[-1] if lines else ""
    kind, _, words = said.partition(" ")
    if kind not in ("open", "token", "error"):  # the probe itself failed: Ray says the rest
        return "open", ""
    return kind, words


def head_refusal(address: str, where: str, origin: str = "host config") -> tuple[str, str] | None:
    """None when the head at ``where`` (``[ray] address`` = ``address``) answers as a Ray
    head that takes this host as it is; else (what is wrong, what to do); ``origin``: the
    config file that names it. Blocking."""
    shown = where if where == address else f"{where} (found for [ray] address = {address!r})"
    kind, words = _ask(where, token=False)
    if kind in ("silent", "error"):
        return (
            f"{shown} takes TCP connections but does not answer as a Ray cluster's head: {words}",
            f"check [ray] address in {origin}: it must be the head's GCS address "
            "(HOST:PORT, what 'ray start --head' printed; 6379 by default), not another "
            "service's port",
        )
    sends, why = host_auth(address)
    if kind == "open" and sends:
        return (
            f"the Ray cluster at {shown} runs without token authentication, and this host "
            f"would send a token ({why}): Ray on this host would refuse the calls of the "
            "cluster's nodes, which send none, and each Ray plugin would end before it ran",
            "set RAY_AUTH_MODE=disabled in the host's environment (or start the cluster "
            "with token authentication, the same token on every node and on this host)",
        )
    if kind == "token" and not sends:
        return (
            f"the Ray cluster at {shown} requires a token (token authentication), and this "
            f"host sends none ({why})",
            _SET_TOKEN,
        )
    if kind == "token":
        again, _ = _ask(where, token=True)
        if again == "token":
            return (
                f"the Ray cluster at {shown} refused this host's token ({why}): it is not "
                "the cluster's",
                "put the cluster's token ('ray get-auth-token' on its head) in RAY_AUTH_TOKEN "
                "or ~/.ray/auth_token on this host",
            )
    return None
