"""plugbay's pytest plugin (entry point ``pytest11``): fixtures for testing plugins.

``plugbay_host``
    a factory: ``plugbay_host(path, ..., isolation="inline"|"process"|"sandbox", config=...,
    grant=True, check=True)`` starts a real host with those plugins and returns a
    :class:`~plugbay.pdk.testing.PluginHost`; every host is stopped after the test.
``plugbay_isolation``
    ``"inline"`` then ``"process"``: a test that takes it runs under both backends.

See :mod:`plugbay.pdk.testing` for what a ``PluginHost`` offers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from plugbay.pdk.testing import HostFactory, Isolation, PathLike, PluginHost

__all__ = ["plugbay_host", "plugbay_isolation"]


@pytest.fixture
def plugbay_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostFactory]:
    """Start hosts with given plugins; each is stopped (plugins cleaned up) after the test."""
    started: list[PluginHost] = []

    def factory(
        *plugins: PathLike,
        isolation: Isolation | None = "inline",
        config: Mapping[str, Mapping[str, Any]] | None = None,
        grant: bool = True,
        check: bool = True,
    ) -> PluginHost:
        host = PluginHost(
            plugins,
            isolation=isolation,
            config=config,
            grant=grant,
            check=check,
            state_dir=tmp_path_factory.mktemp("plugbay-state"),
        )
        started.append(host)
        return host.start()

    yield factory
    for host in reversed(started):
        host.stop()


@pytest.fixture(params=["inline", "process"])
def plugbay_isolation(request: pytest.FixtureRequest) -> Isolation:
    """Each isolation backend in turn: the test runs once inline, once in a worker process."""
    value: Isolation = request.param
    return value
