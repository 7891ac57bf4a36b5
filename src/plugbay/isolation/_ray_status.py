"""How the operator looks at the Ray cluster the host joined, in a hint (``isolation.ray``).

A bare ``ray status`` finds the cluster Ray last recorded on this machine, with the
token in ``~/.ray``: a private cluster (``[ray] address = "local"``) is neither (its
token is in its temp dir, ``isolation._ray_join.private_token``), so Ray answers
``AuthenticationError``. The hint names ``plugbay nodes``, which asks through the
host, and Ray's own command with the address and the token it needs.
"""

from __future__ import annotations

import os

from plugbay.isolation.ray_settings import RaySettings

__all__ = ["look_at_cluster"]


def look_at_cluster(settings: RaySettings, gcs_address: str | None) -> str:
    """What to run to see the cluster's nodes: ``plugbay nodes``, or ``ray status`` with
    the cluster's address (``gcs_address``: the head's, once joined) and token."""
    command = f"ray status --address {gcs_address or settings.address}"
    token = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if settings.address == "local" and token:
        command = f"RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={token} {command}"
    token_too = "" if settings.address == "local" else ", with the cluster's token as on this host"
    return (
        "'plugbay nodes' lists the cluster's nodes, alive or dead, with their resources; "
        f"Ray's own view: '{command}' on this machine{token_too}"
    )
