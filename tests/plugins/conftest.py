"""Fixtures for the bundled plugins: a real host on the repository's plugins/ directory."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugbay.runtime.host import Host
from tests._ircd import NGIRCD, Client, IrcServer

BUNDLED = Path(__file__).resolve().parents[2] / "plugins"


@pytest.fixture
async def bundled(tmp_path: Path) -> AsyncIterator[Host]:
    host = Host(
        BUNDLED,
        state_dir=tmp_path / "state",
        entry_points=False,
        config={"integration.protocol": {"port": 0}},
        # the gateway listens on a TCP port, which a sandboxed worker never may:
        # the operator trusts it, as the shipped plugbay.toml does
        inline=["integration.protocol"],
    )
    async with host:
        yield host


def load_engine(relative: str, module: str) -> Any:
    """Import a bundled plugin's own module the way the host does (a synthetic package)."""
    directory = BUNDLED / relative
    package = f"_engine_{relative.replace('/', '_')}"
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = [str(directory)]
        sys.modules[package] = pkg
    spec = importlib.util.spec_from_file_location(f"{package}.{module}", directory / f"{module}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IrcServer]:
    """A real ngIRCd on 127.0.0.1 (the IRC plugin's tests)."""
    if not NGIRCD.exists():
        pytest.fail("Debian's ngircd is missing: 'make ngircd' installs it (make test does)")
    ircd = IrcServer(tmp_path)
    ircd.start()
    try:
        yield ircd
    finally:
        ircd.stop()


@pytest.fixture
async def alice(server: IrcServer) -> AsyncIterator[Client]:
    """A real IRC client, connected to that ngIRCd as a user would be."""
    client = Client(server.port)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()
