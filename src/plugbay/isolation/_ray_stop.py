"""What the host says when it stops without its Ray cluster's head (``isolation.ray``).

With the head gone nothing on the nodes can be asked to end: the host's stop finishes
on its own, and the operator is told what is left and what to do next, once, as the
host stops (the loss itself was logged when it was found: ``isolation.ray_head``).
"""

from __future__ import annotations

from plugbay.isolation.ray_settings import RaySettings


def headless_stop(settings: RaySettings, lost: tuple[str, float] | None) -> str:
    """The warning for a stop after the head was lost (``lost``: why, and when)."""
    why = lost[0] if lost is not None else "the Ray cluster's head is unreachable"
    return (
        f"the host stopped without the Ray cluster's head ([ray] address = "
        f"{settings.address!r}): {why}. Its Ray plugins' actors and agents could not be "
        "asked to end: each node ends them when its raylet gives up on the head "
        "(Ray's gcs_rpc_server_reconnect_timeout_s). Start the head again and let the "
        "nodes rejoin, then start the host: it places its Ray plugins again"
    )
