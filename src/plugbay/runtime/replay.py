"""Replay: a recording's calls, run again against an installed version, in a sandbox
of its own, and compared with what was recorded.

``plugbay replay RECORDING --version V``:

1. the version is looked up in the host's store (``<state>/store``), else in its
   plugin directories; the plugins it depends on are taken from the same places;
2. a host of its own starts in a temporary directory, with the host config's policy
   (a sandboxed plugin stays sandboxed) and a *copy* of the plugin's data directory
   (``<state>/data/<id>``): the live directory is never opened, and a running host
   is never asked anything;
3. each recorded call runs in the recorded order, one at a time; a call with a
   redacted parameter cannot be replayed and is counted as ``skipped``, a call whose
   answer was too large to record is run but not compared;
4. the answers are compared with the recording's per command (``runtime.compare``):
   answers that differ, new errors, errors that went away, latency before and after.

:attr:`ReplayReport.failed` (answers that differ or new errors) is what makes
``plugbay replay`` exit non-zero, so it can gate a deployment.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugbay.api.errors import PlugbayError
from plugbay.model.discover import discover
from plugbay.model.manifest import PluginManifest
from plugbay.model.versions import Version
from plugbay.runtime.beside import copy_data
from plugbay.runtime.compare import Comparison
from plugbay.runtime.recorder import Recording, error_of

__all__ = ["ReplayReport", "find_version", "replay"]


@dataclass(slots=True)
class ReplayReport:
    plugin: str
    version: str
    recorded_versions: list[str]
    comparison: Comparison
    replayed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.comparison.differences > 0

    @property
    def calls_per_second(self) -> float | None:
        return self.replayed / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "version": self.version,
            "recorded_versions": self.recorded_versions,
            "replayed": self.replayed,
            "skipped": self.skipped,
            "differences": self.comparison.differences,
            "failed": self.failed,
            "seconds": round(self.seconds, 6),
            "calls_per_second": self.calls_per_second,
            "commands": self.comparison.to_dict(),
            "notes": self.notes,
        }


def _manifests(plugin_dirs: Sequence[Path], state_dir: Path | None) -> list[PluginManifest]:
    """Every manifest the host would know: its plugin directories, then its store."""
    found = list(discover(list(plugin_dirs), entry_points=False).manifests)
    if state_dir is not None and (state_dir / "store").is_dir():
        from plugbay.runtime.store import PluginStore

        found += PluginStore(state_dir / "store").discover().manifests
    return found


def find_version(
    plugin_id: str, version: str, plugin_dirs: Sequence[Path], state_dir: Path | None
) -> tuple[PluginManifest, list[PluginManifest]]:
    """The manifest of ``plugin_id`` ``version``, and one manifest (the newest) of each
    other plugin the host knows, for its dependencies."""
    wanted = Version.parse(version)
    target: PluginManifest | None = None
    others: dict[str, PluginManifest] = {}
    known: list[str] = []
    for m in _manifests(plugin_dirs, state_dir):
        if m.id == plugin_id:
            known.append(str(m.version))
            if m.version == wanted and target is None:
                target = m
        elif m.id not in others or m.version > others[m.id].version:
            others[m.id] = m
    if target is None:
        raise PlugbayError(
            f"version {version} is not installed"
            + (f" (known: {', '.join(sorted(set(known)))})" if known else " (no version is)"),
            plugin=plugin_id,
            hint=f"'plugbay install PATH' adds it to the store; 'plugbay history {plugin_id}' "
            "shows the versions it had",
        )
    return target, list(others.values())


async def replay(
    recording: Recording,
    version: str,
    *,
    plugin_dirs: Sequence[Path] = (),
    state_dir: Path | None = None,
    config_file: Path | None = None,
    call_timeout: float = 30.0,
) -> ReplayReport:
    """Run ``recording`` against ``version`` in a host of its own; see the module docstring."""
    from plugbay.runtime.host import Host

    plugin_id = recording.plugin
    target, others = find_version(plugin_id, version, plugin_dirs, state_dir)
    report = ReplayReport(
        plugin_id,
        str(target.version),
        sorted({c.version for c in recording.calls}),
        Comparison(),
    )
    with tempfile.TemporaryDirectory(prefix="plugbay-replay-") as work:
        sandbox_state = Path(work) / "state"
        live_data = (state_dir / "data" / plugin_id) if state_dir is not None else None
        if live_data is not None and live_data.is_dir():
            copy_data(live_data, sandbox_state / "data" / plugin_id)
        else:
            report.notes.append("the plugin had no data directory: it starts with an empty one")
        host = Host(
            None,
            state_dir=sandbox_state,
            config_file=config_file,
            entry_points=False,
            load=[plugin_id],
            call_timeout=call_timeout,
            monitoring=False,
            probation=0,
        )
        host.registry.register(target)
        for manifest in others:
            host.registry.register(manifest)
        async with host:
            rec = host.plugin(plugin_id)
            if str(rec.state) != "active":
                raise PlugbayError(
                    f"{version} did not start in the replay's sandbox: {rec.reason}",
                    plugin=plugin_id,
                    hint=f"'plugbay info {plugin_id}' on a host serving {version} says more",
                )
            await _run(host, recording, report)
    return report


async def _run(host: Any, recording: Recording, report: ReplayReport) -> None:
    comparison = report.comparison
    clock = time.perf_counter
    began = clock()
    for call in recording.calls:
        if call.redacted:
            comparison.skip(call.command)
            report.skipped += 1
            continue
        started = clock()
        try:
            result = await host.call_with(recording.plugin, call.command, call.params, strict=False)
            got: tuple[Any, dict[str, str] | None, float] = (result, None, clock() - started)
        except PlugbayError as exc:
            got = (None, error_of(exc), clock() - started)
        report.replayed += 1
        if call.truncated and call.error is None and got[1] is None:
            comparison.skip(call.command)  # nothing recorded to compare with
            continue
        comparison.add(call.command, call.params, (call.result, call.error, call.seconds), got)
    report.seconds = clock() - began
    if report.skipped:
        report.notes.append(
            f"{report.skipped} call(s) had a redacted (secret) parameter and were not replayed"
        )
