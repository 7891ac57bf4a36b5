"""Upgrades that prove themselves: the host's recorder, canary and shadow, in one place.

:class:`Upgrades` is what the host (``host.trials``), its HTTP API and the CLI
ask: start and stop a plugin's flight recorder (``runtime.recorder``), run a
canary (``runtime.canary``) or a shadow (``runtime.shadow``) of a new version.
Each of them listens to the plugin's calls through a tap (``runtime.tap``).
Replay and bisect need no running host of their own making and live in
``runtime.replay`` and ``runtime.bisect``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import PlugbayError, PluginStateError
from plugbay.runtime.bisect import ActiveSet
from plugbay.runtime.recorder import DEFAULT_CALLS, Recorder
from plugbay.runtime.tap import PluginTaps

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest
    from plugbay.monitor.alerts import AlertManager
    from plugbay.runtime.canary import Canary, CanarySettings
    from plugbay.runtime.host import Host
    from plugbay.runtime.shadow import Shadow

__all__ = ["UpgradeTrials"]

#: the `plugbay upgrade` option that starts each kind of trial
_START: Final = {"canary": "canary 10%", "shadow": "shadow"}

log = logging.getLogger("plugbay.upgrades")

#: seconds between writes of a recording that changed
FLUSH_EVERY: Final = 2.0


class UpgradeTrials:
    """The recorders, canaries and shadows of one host's plugins."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.recorders: dict[str, Recorder] = {}
        self.canaries: dict[str, Canary] = {}
        self.shadows: dict[str, Shadow] = {}
        #: the plugins a bisect moves between, and puts back (``runtime.bisect``)
        self.bisect = ActiveSet(host)
        #: how each plugin's last canary or shadow ended
        self.finished: dict[str, dict[str, Any]] = {}
        self._flusher: asyncio.Task[None] | None = None
        host.manager.taps.on_route = self._on_route
        host.manager.swap_guard = self._refuse_swap

    # ------------------------------------------------------------------ recording

    def record(
        self,
        plugin_id: str,
        *,
        calls: int | None = None,
        max_bytes: int | None = None,
        source: str = "api",
    ) -> dict[str, Any]:
        """Start recording a plugin's calls (or change the bounds of its recording)."""
        rec = self.host.manager.record(plugin_id)  # PluginNotFound, with a suggestion
        recorder = self.recorders.get(plugin_id)
        if recorder is not None:
            if calls is not None:
                if calls < 1:
                    raise PlugbayError(
                        f"a recording keeps at least one call (asked: {calls})",
                        plugin=plugin_id,
                        hint="give --calls 1 or more",
                    )
                recorder.calls = calls
            if max_bytes is not None:
                recorder.max_bytes = max_bytes
            return recorder.status()
        kwargs: dict[str, Any] = {
            "calls": calls if calls is not None else self._policy_of()[1],
            "source": source,
        }
        if max_bytes is not None:
            kwargs["max_bytes"] = max_bytes
        secret = rec.manifest.secret_parameters if rec.manifest is not None else ()
        recorder = Recorder(plugin_id, self._path(plugin_id), secret=secret, **kwargs)
        self.recorders[plugin_id] = recorder
        self.retap(plugin_id)
        self._start_flusher()
        self.host.events.emit("recording.started", plugin=plugin_id, calls=recorder.calls)
        return recorder.status()

    def stop_recording(self, plugin_id: str) -> dict[str, Any]:
        """Stop recording; the file keeps what was recorded."""
        recorder = self.recorders.pop(plugin_id, None)
        if recorder is None:
            raise self._not_recording(plugin_id)
        self.retap(plugin_id)
        recorder.save()
        self.host.events.emit("recording.stopped", plugin=plugin_id, calls=len(recorder))
        return {**recorder.status(), "recording": False}

    def recording(self, plugin_id: str) -> bytes:
        """The recording as a file holds it (saved first); from the state when not recording."""
        recorder = self.recorders.get(plugin_id)
        if recorder is not None:
            recorder.save()
            return recorder.to_bytes()
        path = self._path(plugin_id)
        if path is not None and path.is_file():
            return path.read_bytes()
        raise self._not_recording(plugin_id)

    def recording_status(self, plugin_id: str | None = None) -> list[dict[str, Any]]:
        return [
            r.status()
            for pid, r in sorted(self.recorders.items())
            if plugin_id is None or pid == plugin_id
        ]

    def _not_recording(self, plugin_id: str) -> PlugbayError:
        self.host.manager.record(plugin_id)  # an unknown id says so first
        return PluginStateError(
            "has no recording",
            plugin=plugin_id,
            hint=f"'plugbay record {plugin_id}' starts one (on the running host)",
        )

    def _path(self, plugin_id: str) -> Path | None:
        state = self.host.state_dir
        return None if state is None else state / "recordings" / f"{plugin_id}.jsonl"

    def _policy_of(self) -> tuple[tuple[str, ...], int]:
        """``[policy] record`` (id patterns) and ``record-calls`` of the host's policy
        (read and checked with the rest of the host config when the host started)."""
        policy = self.host.manager.settings.policy
        return policy.record, policy.record_calls or DEFAULT_CALLS

    def _on_route(self, plugin_id: str, taps: PluginTaps) -> None:
        """A route is being installed for ``plugin_id``: its taps follow the version."""
        recorder = self.recorders.get(plugin_id)
        if recorder is None:
            patterns, _ = self._policy_of()
            if any(fnmatch.fnmatchcase(plugin_id, p) for p in patterns):
                try:
                    recorder = Recorder(
                        plugin_id, self._path(plugin_id), calls=self._policy_of()[1],
                        source="policy",
                    )  # fmt: skip
                except PlugbayError as exc:  # a bad file must not stop the plugin
                    log.error("%s", exc)
                    return
                self.recorders[plugin_id] = recorder
                self._start_flusher()
        rec = self.host.manager.records_by_id.get(plugin_id)
        if recorder is not None and rec is not None and rec.manifest is not None:
            recorder.set_secret(rec.manifest.secret_parameters)
        wanted = [x for x in (recorder, self.shadows.get(plugin_id)) if x is not None]
        taps.listeners[:] = wanted

    def retap(self, plugin_id: str) -> None:
        """Install the plugin's route again, so its taps are what they are now."""
        manager = self.host.manager
        route = manager.route_of(plugin_id)
        if route is not None:  # no route: held by a swap, which installs one after
            manager.set_route(plugin_id, route)
        else:
            taps = manager.taps.of(plugin_id)
            self._on_route(plugin_id, taps)

    def _start_flusher(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            return
        with contextlib.suppress(RuntimeError):  # no running loop: saved at stop
            self._flusher = asyncio.get_running_loop().create_task(self._flush_every())

    async def _flush_every(self) -> None:
        while self.recorders:
            await asyncio.sleep(FLUSH_EVERY)
            self.flush()

    def flush(self) -> None:
        for recorder in list(self.recorders.values()):
            if recorder.dirty:
                try:
                    recorder.save()
                except OSError as exc:
                    log.error("the recording of %s cannot be written: %s", recorder.plugin_id, exc)

    # ------------------------------------------------------------------ canary

    async def canary(
        self, plugin_id: str, version: str | None = None, settings: CanarySettings | None = None
    ) -> dict[str, Any]:
        """Start a canary of ``version`` (default: the newest installed); see
        ``runtime.canary``. Returns at once; :meth:`wait_canary` waits for the decision."""
        from plugbay.runtime.canary import Canary, CanarySettings  # (a host's start: not)

        settings = settings or CanarySettings()
        settings.check(plugin_id)
        self._refuse_busy(plugin_id, "canary")
        target = self._target(plugin_id, version)
        canary = Canary(self, plugin_id, target, settings)
        self.canaries[plugin_id] = canary
        try:
            await canary.start()
        except BaseException:
            self.canaries.pop(plugin_id, None)
            raise
        canary.decided.add_done_callback(
            lambda done: self.finished.__setitem__(plugin_id, done.result())
        )
        return canary.summary()

    def canary_status(self, plugin_id: str) -> dict[str, Any]:
        """The running canary's figures, else how the last one ended."""
        canary = self.canaries.get(plugin_id)
        if canary is not None:
            return canary.summary()
        last = self.finished.get(plugin_id)
        if last is not None and "mirrored" not in last:  # a shadow's ends here too
            return last
        self.host.manager.record(plugin_id)
        for event in self.host.history(plugin_id, limit=1000):  # one ended before a restart
            if event.action == "canary" and event.result == "started":  # the newest: no end
                raise PluginStateError(
                    f"has no canary running: the last one (of {event.details.get('to')}, "
                    f"beside {event.details.get('from')}) recorded no end: the host stopped "
                    "while it ran (killed, say), so it was neither promoted nor rolled back",
                    plugin=plugin_id,
                    hint=f"'plugbay history {plugin_id}' shows it; 'plugbay upgrade "
                    f"{plugin_id} --canary 10%' starts a new one",
                )
            if event.action == "canary" and event.result in ("promoted", "rolled-back"):
                return _ended(plugin_id, event.result, event.reason, event.details)
        raise self._none_running(plugin_id, "canary")

    async def wait_canary(self, plugin_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the running canary is promoted or rolled back; its summary."""
        canary = self.canaries.get(plugin_id)
        if canary is None:
            return self.canary_status(plugin_id)
        async with asyncio.timeout(timeout):
            return await asyncio.shield(canary.decided)

    async def stop_canary(self, plugin_id: str) -> dict[str, Any]:
        """Roll the canary back now, by hand."""
        canary = self.canaries.get(plugin_id)
        if canary is None:
            self.host.manager.record(plugin_id)
            raise self._none_running(plugin_id, "canary")
        await canary.abort("stopped by the operator")
        return canary.summary()

    # ------------------------------------------------------------------ shadow

    async def shadow(self, plugin_id: str, version: str | None = None) -> dict[str, Any]:
        """Start a shadow of ``version`` (default: the newest installed); see ``runtime.shadow``."""
        from plugbay.runtime.shadow import Shadow

        self._refuse_busy(plugin_id, "shadow")
        target = self._target(plugin_id, version)
        shadow = Shadow(self, plugin_id, target)
        self.shadows[plugin_id] = shadow
        try:
            await shadow.start()
        except BaseException:
            self.shadows.pop(plugin_id, None)
            raise
        self.retap(plugin_id)
        return shadow.summary()

    def shadow_status(self, plugin_id: str) -> dict[str, Any]:
        """The running shadow's comparison, else the last one's."""
        shadow = self.shadows.get(plugin_id)
        if shadow is not None:
            return shadow.summary()
        last = self.finished.get(plugin_id)
        if last is not None and "mirrored" in last:
            return last
        self.host.manager.record(plugin_id)
        raise self._none_running(plugin_id, "shadow")

    async def stop_shadow(self, plugin_id: str) -> dict[str, Any]:
        shadow = self.shadows.get(plugin_id)
        if shadow is None:
            return self.shadow_status(plugin_id)
        summary = await shadow.stop()
        self.finished[plugin_id] = summary
        return summary

    def scratch_dir(self, plugin_id: str) -> Path:
        """Where a shadow of ``plugin_id`` keeps its data (never the live directory)."""
        state = self.host.state_dir
        if state is not None:
            return state / "shadows" / plugin_id / "data"
        return Path(tempfile.mkdtemp(prefix=f"plugbay-shadow-{plugin_id}-")) / "data"

    def _target(self, plugin_id: str, version: str | None) -> PluginManifest:
        """The version to try: installed in the store (perhaps by 'plugbay install' while
        this host ran), accepted by the host and by the plugin's active dependents."""
        store, registry = self.host.store, self.host.registry
        if store is not None and plugin_id in registry:
            known = set(registry.versions(plugin_id))
            for manifest in store.discover().manifests:
                if (
                    manifest.id == plugin_id
                    and manifest.version not in known
                    and not store.kept(plugin_id, manifest.version)
                ):
                    with contextlib.suppress(PlugbayError):
                        registry.register(manifest)
        try:
            plan = self.host.manager.upgrade_plan(plugin_id, version)
        except PlugbayError as exc:
            if type(exc) is not PlugbayError:  # a dependent's range, an unknown plugin: as is
                raise
            # nothing newer to try is the plugin's state, not a bad request
            raise PluginStateError(exc.message, plugin=plugin_id, hint=exc.hint) from None
        return plan.changes[plugin_id][1]

    def _refuse_busy(self, plugin_id: str, asked: str) -> None:
        """Refuse to start an ``asked`` trial ("canary", "shadow") while one runs: a shadow
        and a canary of one plugin do not run at once."""
        trial = self.canaries.get(plugin_id) or self.shadows.get(plugin_id)
        if trial is not None:
            kind = "canary" if plugin_id in self.canaries else "shadow"
            new = f"second {asked}" if asked == kind else asked
            raise PluginStateError(
                f"has a {kind} running already (of {trial.target.version}): a {new} "
                f"cannot start until the {kind} ends",
                plugin=plugin_id,
                hint=f"'plugbay {kind} {plugin_id}' shows it; wait for it to end, or stop "
                f"it: 'plugbay {kind} {plugin_id} --stop', then start the {asked} again",
            )

    def _none_running(self, plugin_id: str, kind: str) -> PluginStateError:
        """The error for a ``kind`` ("canary", "shadow") of ``plugin_id`` that does not
        run: when the other trial runs instead, it names that one and how to stop it."""
        other = "shadow" if kind == "canary" else "canary"
        trial = (self.shadows if kind == "canary" else self.canaries).get(plugin_id)
        if trial is None:
            return PluginStateError(
                f"has no {kind} running",
                plugin=plugin_id,
                hint=f"'plugbay upgrade {plugin_id} --{_START[kind]}' starts one",
            )
        return PluginStateError(
            f"has no {kind} running: a {other} of {trial.target.version} runs instead, and "
            f"a {kind} cannot start until the {other} ends",
            plugin=plugin_id,
            hint=f"'plugbay {other} {plugin_id}' shows the {other}; stop it with 'plugbay "
            f"{other} {plugin_id} --stop', then 'plugbay upgrade {plugin_id} "
            f"--{_START[kind]}' starts a {kind}",
        )

    def _refuse_swap(self, plugin_id: str) -> None:
        """A reload, upgrade or rollback of a plugin under trial would change the version
        its canary or shadow is compared with (and a canary's promotion moves from): it
        waits for the trial's end. (A canary deciding has let go already: its promotion
        is the swap.)"""
        canary, shadow = self.canaries.get(plugin_id), self.shadows.get(plugin_id)
        for kind, trial in (("canary", canary), ("shadow", shadow)):
            if trial is not None and trial.state in ("starting", "running"):
                raise PluginStateError(
                    f"has a {kind} of {trial.target.version} running, compared with the "
                    "version serving now: it cannot be swapped until the "
                    f"{kind} ends",
                    plugin=plugin_id,
                    hint=f"wait for the {kind} to end, or stop it first: "
                    f"'plugbay {kind} {plugin_id} --stop'",
                )

    def overview(self) -> dict[str, Any]:
        """Every recording, canary and shadow: running ones, and how the last ones ended."""
        canaries = {pid: c.summary() for pid, c in self.canaries.items()}
        shadows = {pid: s.summary() for pid, s in self.shadows.items()}
        for pid, last in self.finished.items():
            kind = shadows if "mirrored" in last else canaries
            kind.setdefault(pid, last)
        return {
            "recordings": self.recording_status(),
            "canaries": [canaries[pid] for pid in sorted(canaries)],
            "shadows": [shadows[pid] for pid in sorted(shadows)],
        }

    def alerts(self) -> AlertManager | None:
        monitor = self.host.monitor
        return monitor.alerts if monitor is not None else None

    # ------------------------------------------------------------------ the host stops

    async def close(self) -> None:
        """Before the plugins stop: canaries and shadows end (the serving version stays),
        recordings are written."""
        for canary in list(self.canaries.values()):
            with contextlib.suppress(PlugbayError):
                await canary.abort("the host is stopping")
        for shadow in list(self.shadows.values()):
            with contextlib.suppress(PlugbayError):
                await shadow.stop()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        self.flush()


def _ended(
    plugin_id: str, result: str, reason: str | None, details: dict[str, Any]
) -> dict[str, Any]:
    """A canary's summary rebuilt from its history entry (``Canary._write``)."""
    figures = {k: details.get(k) for k in ("old", "new", "share", "window_calls", "seconds")}
    settings = details.get("settings") or {"share": details.get("share")}
    return {
        "plugin": plugin_id, "from": details.get("from"), "to": details.get("to"),
        "state": result, "reason": reason, "settings": settings, "figures": figures,
    }  # fmt: skip
