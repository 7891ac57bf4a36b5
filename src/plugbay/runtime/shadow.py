"""A shadow: a new version receives a copy of each live call; its answers are compared
with the serving version's and thrown away.

``plugbay upgrade ID --shadow``: the new version (installed in the store) starts
beside the serving one with a *scratch* data directory, a copy of the live one
taken at the start (``<state>/shadows/<id>/data``), so whatever it writes stays
there and is removed when the shadow stops. Each call the serving version answers
is sent to the shadow after the caller has its answer (the caller never waits for
the shadow, nor sees its answer or its error); at most :data:`MAX_INFLIGHT` mirrored
calls run at once, further ones are counted as ``dropped``. The comparison
(``runtime.compare``) is kept per command, with examples whose secret parameters
are redacted, and shown by ``plugbay shadow ID``, the API and the dashboard.

A shadow is not a sandbox for the plugin's other effects: calls it makes to other
plugins or services are real. Stateful plugins diverge from their shadow by design
(the shadow's state starts from the copy of the data directory only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plugbay.api import CommandSpec
from plugbay.isolation import PluginHandle
from plugbay.model.manifest import PluginManifest
from plugbay.runtime.beside import copy_data, dispose, start_beside
from plugbay.runtime.compare import Comparison
from plugbay.runtime.recorder import REDACTED, error_of

if TYPE_CHECKING:
    from plugbay.runtime.trials import UpgradeTrials

__all__ = ["MAX_INFLIGHT", "Shadow"]

log = logging.getLogger("plugbay.upgrades")

#: mirrored calls running at once; more are dropped (counted), never queued without bound
MAX_INFLIGHT: Final = 16
_clock: Final = time.perf_counter


class Shadow:
    """One plugin's shadow (a ``runtime.tap.CallListener``)."""

    def __init__(self, trials: UpgradeTrials, plugin_id: str, target: PluginManifest) -> None:
        self.trials = trials
        self.plugin_id = plugin_id
        self.target = target
        self.handle: PluginHandle | None = None
        self.comparison = Comparison()
        self.state = "starting"
        self.dropped = 0
        self.failed_to_mirror = 0
        self.started = time.time()
        self.scratch: Path | None = None
        self._from = ""
        self._secret: frozenset[str] = frozenset(target.secret_parameters)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        manager = self.trials.host.manager
        rec = manager.record(self.plugin_id)
        if rec.manifest is None or rec.state != "active":
            raise manager.not_active(rec)
        self._from = str(rec.manifest.version)
        self._secret |= frozenset(rec.manifest.secret_parameters)
        self.scratch = self.trials.scratch_dir(self.plugin_id)
        live = manager.settings.data_root / self.plugin_id
        await asyncio.to_thread(copy_data, live, self.scratch)
        try:
            self.handle = await start_beside(manager, self.target, self.scratch)
        except BaseException:
            await _unmounted(self.scratch)
            await asyncio.to_thread(shutil.rmtree, self.scratch.parent, True)
            raise
        self.state = "running"
        manager.events.emit(
            "shadow.started", plugin=self.plugin_id, version=str(self.target.version)
        )

    # ------------------------------------------------------------------ the tap

    def called(
        self,
        version: str,
        spec: CommandSpec,
        params: dict[str, Any],
        result: Any,
        error: BaseException | None,
        seconds: float,
    ) -> None:
        if self.state != "running" or self.handle is None:
            return
        if len(self._tasks) >= MAX_INFLIGHT:
            self.dropped += 1
            return
        live = (result, None if error is None else error_of(error), seconds)
        task = asyncio.get_running_loop().create_task(self._mirror(spec, params, live))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mirror(
        self,
        spec: CommandSpec,
        params: dict[str, Any],
        live: tuple[Any, dict[str, str] | None, float],
    ) -> None:
        handle = self.handle
        assert handle is not None
        own = handle.commands.get(spec.name)
        started = _clock()
        try:
            if own is None:
                raise LookupError(f"{self.target.version} has no command '{spec.name}'")
            got: tuple[Any, dict[str, str] | None, float] = (
                await handle.call(own, params, self.trials.host.manager.timeout_of(self.plugin_id)),
                None,
                _clock() - started,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            got = (None, error_of(exc), _clock() - started)
        self.comparison.add(spec.name, self._shown(spec.name, params), live, got)

    def _shown(self, command: str, params: dict[str, Any]) -> dict[str, Any]:
        secret = self._secret
        if not secret:
            return params
        return {
            k: (REDACTED if k in secret or f"{command}.{k}" in secret else v)
            for k, v in params.items()
        }

    # ------------------------------------------------------------------ stop

    async def stop(self) -> dict[str, Any]:
        """Stop mirroring, stop the shadow's instance, remove its scratch data."""
        if self.state != "running":
            return self.summary()
        self.state = "stopping"
        self.trials.shadows.pop(self.plugin_id, None)
        self.trials.retap(self.plugin_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.handle is not None:
            await dispose(self.handle, self.trials.host.manager.settings.cleanup_timeout)
        if self.scratch is not None:
            await _unmounted(self.scratch)
            await asyncio.to_thread(shutil.rmtree, self.scratch.parent, True)
        self.state = "stopped"
        summary = self.summary()
        manager = self.trials.host.manager
        rec = manager.records_by_id.get(self.plugin_id)
        if rec is not None:
            manager.record_history(
                rec, "shadow", "stopped", None,
                {"from": self._from, "to": str(self.target.version),
                 "differences": self.comparison.differences, "dropped": self.dropped},
            )  # fmt: skip
        manager.events.emit(
            "shadow.stopped", plugin=self.plugin_id, version=str(self.target.version),
            differences=self.comparison.differences,
        )  # fmt: skip
        return summary

    def summary(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin_id,
            "from": self._from,
            "to": str(self.target.version),
            "state": self.state,
            "since": self.started,
            "mirrored": sum(c.calls for c in self.comparison.commands.values()),
            "differences": self.comparison.differences,
            "dropped": self.dropped,
            "commands": self.comparison.to_dict(),
        }


async def _unmounted(directory: Path, timeout: float = 10.0) -> None:
    """Wait until the storage image mounted at ``directory`` (if any) is unmounted: that
    follows the exit of the last worker using it."""
    end = time.monotonic() + timeout
    while os.path.ismount(directory) and time.monotonic() < end:  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.02)
