"""The backend protocol (see ``plugbay.isolation``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from plugbay.api import CommandSpec, Plugin, PluginContext
from plugbay.model.manifest import PluginManifest

__all__ = ["Backend", "CallTimeout", "PluginHandle", "deadline"]


class CallTimeout(Exception):
    """The host's own time limit expired, as opposed to a ``TimeoutError`` the plugin
    raised itself (which is the plugin's error, with its own message)."""


@contextlib.asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """``asyncio.timeout`` that raises :class:`CallTimeout` only when *it* expired."""
    timer = asyncio.timeout(seconds)
    try:
        async with timer:
            yield
    except TimeoutError:
        if timer.expired():
            raise CallTimeout(seconds) from None
        raise


class PluginHandle(Protocol):
    """One running plugin instance inside a backend."""

    manifest: PluginManifest
    commands: Mapping[str, CommandSpec]
    #: the plugin object when it lives in the host's process, else None
    instance: Plugin | None

    async def initialize(self, context: PluginContext, timeout: float) -> None: ...

    async def call(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any:
        """Run one command with checked parameters; returns the raw result."""
        ...

    async def cleanup(self, timeout: float) -> None: ...

    def release(self) -> None:
        """Forget the plugin's code (after cleanup, or after a failed start)."""
        ...


class Backend(Protocol):
    name: str

    async def start(self, manifest: PluginManifest) -> PluginHandle:
        """Import the plugin and create its instance (``initialize`` is separate)."""
        ...
