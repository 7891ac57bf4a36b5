"""A fake backend for unit tests: plugins run in memory, with faults on demand.

Like httpx's ``MockTransport``: the code around a backend (the manager, the
swapper, the supervisor, the monitor) is tested against this one without real
worker processes or sleeps. The plugin's code runs in the host's process, on
the inline backend's machinery, but the handle *behaves* like an isolated one
(:attr:`FakeHandle.isolated` is True by default): it can be told to

- **crash** (``backend.crash(plugin_id)``, or ``faults.crash_on`` commands): every
  call in flight fails at once with ``PluginCrashed``, ``on_crash`` is told, and
  later calls fail the same way, as with a worker that died;
- **hang** (``faults.hang``): calls wait until ``faults.unhang()`` or their deadline
  (``CallTimeout``), and show in ``running()`` meanwhile (the monitor's hung alert);
- **be slow** (``faults.slow`` seconds added to each call);
- **leak** (``faults.leak_bytes``: each ``usage()`` sample reports that much more memory);
- **fail state export** (``faults.fail_export``: ``export_state`` raises a ``PlugbayError``);
- **fail to start** (``faults.fail_start``: ``start`` raises ``PluginCrashed``), or not be
  placed yet (``faults.not_placed``: that many starts fail as a Ray start no node took);
- **be denied** (``faults.deny_on`` commands): the call fails with ``PermissionDenied``
  and ``on_security`` is told, as a sandbox's denial.

Faults are per plugin id and read live, so a test can change them while the
plugin runs, and a restarted or swapped-in version gets the same ones. Put it
in place of a backend name before the host starts plugins::

    fake = FakeBackend()
    host.manager.backends["inline"] = fake
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugbay.api import CommandSpec
from plugbay.api.errors import PermissionDenied, PlugbayError, PluginCrashed, PluginLoadError
from plugbay.isolation.base import Backend, EnvironmentPaths, deadline
from plugbay.isolation.inline import InlineHandle
from plugbay.isolation.loading import import_plugin
from plugbay.model.manifest import PluginManifest

if TYPE_CHECKING:
    from plugbay.isolation.policy import Placement

__all__ = ["FakeBackend", "FakeHandle", "Faults"]


@dataclass
class Faults:
    """What a fake plugin does wrong (per plugin id; read at each call)."""

    #: commands whose call crashes the plugin's "process"
    crash_on: set[str] = field(default_factory=set)
    #: calls wait until :meth:`unhang` or their deadline
    hang: bool = False
    #: seconds added to each call
    slow: float = 0.0
    #: bytes the reported memory grows by at each ``usage()`` sample
    leak_bytes: int = 0
    #: ``export_state`` raises
    fail_export: bool = False
    #: ``start`` raises ``PluginCrashed`` (a worker that dies while starting)
    fail_start: bool = False
    #: how many starts to come fail as one no node took in time (a Ray node that is not
    #: back yet: ``details["transient"]``, so a restart tries again)
    not_placed: int = 0
    #: ``cleanup`` never returns (it is cut at its bound)
    hang_cleanup: bool = False
    #: commands whose call the "sandbox" denies
    deny_on: set[str] = field(default_factory=set)
    _released: asyncio.Event | None = None

    def released(self) -> asyncio.Event:
        if self._released is None:
            self._released = asyncio.Event()
        return self._released

    def unhang(self) -> None:
        """Let every hanging call go on, and new calls run at once."""
        self.hang = False
        self.released().set()


class FakeHandle(InlineHandle):
    """A plugin run in memory that behaves like one in its own process."""

    def __init__(self, backend: FakeBackend, manifest: PluginManifest, *, isolated: bool) -> None:
        super().__init__(import_plugin(manifest))
        self._backend = backend
        self.isolated = isolated
        self.faults = backend.faults(manifest.id)
        #: the reason it died, once it has
        self.dead: PlugbayError | None = None
        self._died: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._samples = 0
        self._closing = False
        self.released = False

    # -- faults ---------------------------------------------------------------------------

    def crash(self, reason: str = "its fake worker crashed") -> None:
        """Die now: calls in flight fail with ``PluginCrashed``; ``on_crash`` is told once."""
        if self.dead is not None:
            return
        self.dead = PluginCrashed(
            reason, plugin=self.manifest.id, hint="a fault the test asked for", details={}
        )
        if not self._died.done():
            self._died.set_result(None)
        if self.on_crash is not None and not self._closing:
            self.on_crash(self.dead)

    # -- the contract ---------------------------------------------------------------------

    async def call(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any:
        if self.dead is not None:
            raise self.dead
        if spec.name in self.faults.crash_on:
            self.crash(f"its fake worker crashed in '{spec.name}'")
            assert self.dead is not None
            raise self.dead
        if spec.name in self.faults.deny_on:
            operation = f"running '{spec.name}' (a fault the test asked for)"
            if self.on_security is not None:
                self.on_security({"kind": "denied", "operation": operation, "layer": "fake"})
            raise PermissionDenied(
                f"the sandbox denied {operation}",
                plugin=self.manifest.id,
                details={"layer": "fake"},
            )
        work = asyncio.ensure_future(self._run(spec, params, timeout))
        try:
            await asyncio.wait({work, self._died}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        if work.done():
            return work.result()
        work.cancel()
        assert self.dead is not None
        raise self.dead

    async def _run(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any:
        token = self._started(spec.name)
        try:
            async with deadline(timeout):
                faults = self.faults
                if faults.hang:
                    await faults.released().wait()
                if faults.slow:
                    await asyncio.sleep(faults.slow)
                return await super().call(spec, params, timeout)
        finally:
            self._running.pop(token, None)

    async def cleanup(self, timeout: float) -> None:
        self._closing = True
        if self.dead is not None:
            return
        if self.faults.hang_cleanup:
            async with deadline(timeout):
                await asyncio.Event().wait()
        await super().cleanup(timeout)

    def release(self) -> None:
        self._closing = True
        self.released = True
        super().release()

    async def export_state(self, timeout: float) -> tuple[bool, Any]:
        if self.dead is not None:
            raise self.dead
        if self.faults.fail_export:
            raise PlugbayError(
                "export_state failed (a fault the test asked for)", plugin=self.manifest.id
            )
        return await super().export_state(timeout)

    def usage(self) -> dict[str, Any] | None:
        if not self.isolated:
            return None
        self._samples += 1
        return {
            "rss_bytes": 32 * 2**20 + self._samples * self.faults.leak_bytes,
            "cpu_seconds": 0.0,
            "open_files": 3,
            "threads": 1,
        }

    def alive(self) -> str | None:
        return None if self.dead is None else self.dead.message

    def dump_stacks(self, *, tasks: bool = True) -> str | None:
        if not self.isolated:
            return None
        names = ", ".join(command for _, command in self.running()) or "nothing"
        return f"(fake worker of {self.manifest.id}: running {names})"


class FakeBackend(Backend):
    """Runs plugins in memory; see the module docstring for the faults."""

    name = "fake"

    def __init__(self, *, isolated: bool = True) -> None:
        self.isolated = isolated
        self._faults: dict[str, Faults] = {}
        #: every handle started, oldest first
        self.handles: list[FakeHandle] = []
        self.closed = False

    def faults(self, plugin_id: str) -> Faults:
        """The faults of a plugin (all its handles, now and later, read them)."""
        return self._faults.setdefault(plugin_id, Faults())

    def live(self, plugin_id: str) -> FakeHandle:
        """The newest handle of a plugin that is neither dead nor released."""
        for handle in reversed(self.handles):
            if handle.manifest.id == plugin_id and handle.dead is None and not handle.released:
                return handle
        raise LookupError(f"no live fake handle of '{plugin_id}'")

    def crash(self, plugin_id: str) -> None:
        """Crash the plugin's live handle, as a worker killed from outside."""
        self.live(plugin_id).crash()

    async def start(
        self,
        manifest: PluginManifest,
        placement: Placement | None = None,
        data_dir: Path | None = None,
        environment: EnvironmentPaths | None = None,
    ) -> FakeHandle:
        faults = self.faults(manifest.id)
        if faults.fail_start:
            raise PluginCrashed(
                "its fake worker died while starting (a fault the test asked for)",
                plugin=manifest.id,
            )
        if faults.not_placed > 0:
            faults.not_placed -= 1
            raise PluginLoadError(
                "no fake node took it in time (a fault the test asked for)",
                plugin=manifest.id,
                details={"transient": True},
            )
        handle = FakeHandle(self, manifest, isolated=self.isolated)
        self.handles.append(handle)
        return handle

    async def close(self) -> None:
        for handle in self.handles:
            handle.release()
        self.closed = True
