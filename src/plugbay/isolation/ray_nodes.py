"""The Ray cluster's node table as the host sees it: every node, alive or dead, in bounded time.

``ray.nodes()`` asks the cluster's head (its GCS). While the head is down that
question blocks inside Ray for as long as Ray keeps retrying, so the host never
waits on it directly: one question is in flight at a time (in a thread), its
answer is kept for a second, and a caller waits at most ``timeout`` seconds; past
that the table says the cluster is unreachable, and why. The dashboard, the API
and ``plugbay info`` read this; placement (``isolation.ray``) keeps its own,
stricter, path.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Final

from plugbay.isolation.inline import run_in_daemon_thread

__all__ = ["ClusterNodes", "NodeRow"]

#: seconds an answer of the head is reused (a dashboard polls every few seconds)
_FRESH: Final = 1.0


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One node of the cluster, as its head last said."""

    node: str
    address: str | None
    alive: bool
    resources: dict[str, float]
    labels: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "address": self.address,
            "alive": self.alive,
            "resources": dict(self.resources),
            "labels": dict(self.labels),
        }


@dataclass
class ClusterNodes:
    """The node table of one cluster connection, asked at most once at a time."""

    #: seconds a caller waits for the head before the table says it is unreachable
    timeout: float = 3.0
    _rows: list[NodeRow] = field(default_factory=list)
    _asked_at: float = -1e9
    _error: str | None = None
    _pending: asyncio.Future[list[dict[str, Any]]] | None = None

    def last(self, why: str) -> tuple[list[NodeRow], str]:
        """The last nodes known, without asking the head (it is known to be gone)."""
        self._error = why
        return list(self._rows), why

    async def read(self, ray: Any) -> tuple[list[NodeRow], str | None]:
        """The nodes and None, or the last nodes known and why the head did not answer."""
        if time.monotonic() - self._asked_at < _FRESH and self._pending is None:
            return list(self._rows), self._error
        if self._pending is None or self._pending.done():
            # one question in flight, whatever the number of callers; in a daemon thread,
            # as Ray may hold it long past the answer's use (the host's exit never waits)
            self._pending = run_in_daemon_thread(ray.nodes)
        pending = self._pending
        try:
            found = await asyncio.wait_for(asyncio.shield(pending), self.timeout)
        except TimeoutError:
            self._error = (
                f"the cluster's head did not answer within {self.timeout:g} s "
                "(it is down or unreachable)"
            )
            return list(self._rows), self._error
        except Exception as exc:  # Ray's own error while the head is gone
            self._pending = None
            self._asked_at = time.monotonic()
            self._error = f"the cluster's head did not answer: {type(exc).__name__}: {exc}"
            return list(self._rows), self._error
        self._pending = None
        self._asked_at = time.monotonic()
        self._error = None
        self._rows = [_row(n) for n in found]
        return list(self._rows), None


def _row(n: dict[str, Any]) -> NodeRow:
    return NodeRow(
        node=str(n["NodeID"]),
        address=n.get("NodeManagerAddress"),
        alive=bool(n.get("Alive")),
        resources={
            # Ray's per-node bookkeeping resources ("node:10.0.0.1") say nothing more
            str(k): float(v)
            for k, v in (n.get("Resources") or {}).items()
            if not str(k).startswith("node:")
        },
        labels={str(k): str(v) for k, v in (n.get("Labels") or {}).items()},
    )
