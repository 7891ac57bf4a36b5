"""The host's stop when leaving the Ray cluster fails (``isolation._ray_join.leave_for_stop``).

``ray.shutdown()`` raising made the Ray backend's close raise, and with it the host's
stop, which then skipped the rest of its own work: the Ray backend's channel listener
stayed open, the monitor and the event bus were not stopped. The failure is logged
(what, and what the operator may have to do), and the stop finishes.

Real parts: the session's Ray cluster (``tests/ray_support.py``), joined by the host
itself (this process is not connected beforehand), a plugin on a node's agent, a real
listening socket. The one stand-in: ``ray.shutdown`` is wrapped (monkeypatch) to raise
after Ray's own shutdown ran, as no real cluster fails it on demand.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from plugbay.isolation.policy import IsolationPolicy
from tests.conftest import PluginFactory
from tests.ray_support import ray_host


def refused(port: int) -> bool:
    """Whether nothing listens on ``127.0.0.1:port`` any more."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
async def test_a_ray_shutdown_that_raises_is_logged_and_the_host_still_stops_its_own_parts(
    ray_nodes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    import ray

    plugins = PluginFactory(tmp_path / "plugins")
    plugins("acme.notes")
    policy = IsolationPolicy.from_config(
        {"ray": {"address": ray_nodes.address, "plugins": ["acme.*"]}}
    )
    real = ray.shutdown

    def failing(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)  # this process leaves all the same: the session's cluster stays
        raise RuntimeError("the raylet at 127.0.0.1:6380 did not answer")

    assert not ray.is_initialized()
    caplog.set_level(logging.WARNING, logger="plugbay.isolation.ray")
    async with ray_host(plugins.root, tmp_path / "state", policy=policy) as host:
        assert await host.call("acme.notes", "ping") == "pong from acme.notes 1.0.0"
        backend: Any = host.manager.backends["ray"]
        assert backend._owns_connection  # the host joined: leaving is its own
        port = backend._channels.port
        assert not refused(port)
        monkeypatch.setattr(ray, "shutdown", failing)
    said = " ".join(r.getMessage() for r in caplog.records if r.name == "plugbay.isolation.ray")
    assert f"leaving the Ray cluster ([ray] address = '{ray_nodes.address}') failed" in said, said
    assert "RuntimeError: the raylet at 127.0.0.1:6380 did not answer" in said, said
    assert "The host stopped all the same" in said, said
    assert "'ray list actors' there shows whether its plugbay actors ended" in said, said
    assert refused(port), "the host's channel listener for Ray plugins is still open"
    assert not backend.connected
    assert host.monitor is None or host.monitor._task is None, "the monitor still runs"
    assert not ray.is_initialized()
