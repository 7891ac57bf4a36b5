"""Bisect: which plugin, or which version of one plugin, makes a check fail.

``plugbay bisect --check "CMD"`` (a shell command: exit status 0 passes) or
``plugbay bisect --call ID COMMAND [k=v ...] --expect VALUE`` (a plugin command and
the answer it should give). No person in the loop:

* **plugins**: the active plugins in start order (each after everything it needs),
  so every prefix of that order is a set whose dependencies are all active. The
  check must fail with all of them; then a binary search finds the shortest prefix
  that fails: the plugin that ends it is the culprit (with 32 plugins: the first
  check, then 5 halvings). Plugins leave and come back with ``unload`` and ``load``
  of the very version that was active (nothing is disabled in the state, so a
  crash midway leaves the next start as it was);
* **versions** (``--plugin ID``): the versions of one plugin in the store, oldest
  first, up to the one serving. The check must fail on the serving one and pass on
  the oldest; a binary search finds the first version that fails. Versions are
  moved by the swap (state handed over, callers keep working).

Each step is said as it is taken (``on_step``), and the host is put back as it was
at the end, whatever happened: the same plugins active, at the same versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from plugbay.api.errors import PlugbayError, PluginNotFound, PluginStateError
from plugbay.model.graph import reachable
from plugbay.runtime.compare import plain

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest
    from plugbay.runtime.host import Host
    from plugbay.runtime.records import PluginRecord

__all__ = [
    "Activated",
    "ActiveSet",
    "BisectResult",
    "BisectTarget",
    "Check",
    "bisect_plugins",
    "bisect_versions",
    "call_check",
    "shell_check",
]

#: the answer of a check: passed, and a short note of what it saw
Check = Callable[[], Awaitable[tuple[bool, str]]]


class BisectTarget(Protocol):
    """The host being bisected (in this process, or through its API)."""

    async def begin(self) -> tuple[list[str], dict[str, list[str]]]:
        """Remember the active plugins; returns them in start order, with what each needs."""
        ...

    async def activate(self, ids: Sequence[str]) -> Activated:
        """Make exactly ``ids`` (a prefix of the start order) active; the ids active,
        and each of ``ids`` that did not start, with why."""
        ...

    async def versions(self, plugin_id: str) -> tuple[list[str], str]:
        """The versions of ``plugin_id`` in the store (oldest first) and the one serving."""
        ...

    async def move(self, plugin_id: str, version: str) -> None:
        """Serve ``version`` of ``plugin_id``."""
        ...

    async def restore(self) -> list[str]:
        """Put the host back as :meth:`begin` found it; what could not be restored."""
        ...


#: why a plugin a bisect's step asked for did not start: ``{code, message, hint}``
Failure = dict[str, str | None]


@dataclass(frozen=True, slots=True)
class Activated:
    """What a step of a bisect left active (in start order), and each plugin it asked
    for that did not start (its ``initialize`` raised, its run-time config is refused,
    what it needs did not start), with why: the check then ran without them."""

    order: list[str]
    failed: dict[str, Failure] = field(default_factory=dict)


@dataclass(slots=True)
class BisectResult:
    culprit: str | None
    checks: int
    steps: list[dict[str, Any]] = field(default_factory=list)
    found: str = ""
    restored: bool = True
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "culprit": self.culprit,
            "found": self.found,
            "checks": self.checks,
            "steps": self.steps,
            "restored": self.restored,
            "problems": self.problems,
        }


# --------------------------------------------------------------------------- checks


def shell_check(command: str, *, timeout: float = 120.0) -> Check:
    """A shell command: it passes when it exits 0."""

    async def check() -> tuple[bool, str]:
        proc = await asyncio.create_subprocess_shell(
            command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(timeout):
                output, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return False, f"did not finish within {timeout:g} s"
        text = output.decode(errors="replace").strip().splitlines()
        last = text[-1][:200] if text else ""
        return proc.returncode == 0, f"exit {proc.returncode}" + (f": {last}" if last else "")

    return check


def call_check(
    call: Callable[[str, str, dict[str, Any]], Awaitable[Any]],
    plugin_id: str,
    command: str,
    params: dict[str, Any],
    expect: Any,
) -> Check:
    """A plugin command and its expected answer (compared as plain data; ``expect``
    given as JSON text is decoded first, else compared as text)."""
    if isinstance(expect, str):
        with contextlib.suppress(ValueError):
            expect = json.loads(expect)

    async def check() -> tuple[bool, str]:
        try:
            got = plain(await call(plugin_id, command, params))
        except PlugbayError as exc:
            return False, f"{plugin_id} {command} failed: {exc.message}"
        ok = got == plain(expect) or (isinstance(expect, str) and str(got) == expect)
        return ok, f"{plugin_id} {command} answered {json.dumps(got, default=str)[:200]}"

    return check


# --------------------------------------------------------------------------- the search


async def bisect_plugins(
    target: BisectTarget,
    check: Check,
    on_step: Callable[[dict[str, Any]], None],
    *,
    keep: Sequence[str] = (),
) -> BisectResult:
    """The plugin whose addition makes ``check`` fail; see the module docstring.
    ``keep`` (a ``--call`` check's plugin) stays active throughout, with what it needs."""
    everything, needs = await target.begin()
    kept = reachable([k for k in keep if k in needs], needs)  # and what they need
    base = [pid for pid in everything if pid in kept]
    order = [pid for pid in everything if pid not in kept]
    result = BisectResult(None, 0)
    try:

        async def step(ids: Sequence[str], what: str) -> bool:
            active = await target.activate([*base, *ids])
            ok, note = await check()
            result.checks += 1
            entry = {
                "check": result.checks, "what": what, "active": len(active.order),
                "passed": ok, "note": note, "failed": active.failed,
            }  # fmt: skip
            result.steps.append(entry)
            on_step(entry)
            if active.failed:  # not the test it claims to be: halving on would mislead
                raise _Inconclusive(result.checks, active.failed)
            return ok

        if await step(order, f"all {len(everything)} plugins active"):
            result.found = (
                f"no plugin fails the check: it passes with all {len(everything)} plugins "
                "active, so there is nothing to find (a bisect needs a check that fails now)"
            )
            return result
        lo, hi = 0, len(order)  # prefix(hi) fails; prefix(lo) is taken to pass
        while hi - lo > 1:
            mid = (lo + hi) // 2
            what = f"the first {mid} of {len(order)} ({order[lo]} … {order[mid - 1]} on trial)"
            if await step(order[:mid], what):
                lo = mid
            else:
                hi = mid
        if hi == 1 and await _fails_alone(step):
            result.found = "the check fails with no plugin active: no plugin is to blame"
            if base:
                result.found = (
                    f"the check fails with only {', '.join(base)} active (the checked plugin "
                    "and what it needs): no other plugin is to blame"
                )
            return result
        result.culprit = order[hi - 1]
        result.found = (
            f"{order[hi - 1]}: the check passes with the {hi - 1} plugin(s) started before it, "
            f"and fails once it is active too"
        )
        return result
    except _Inconclusive as stopped:
        result.found = stopped.found()
        return result
    finally:
        result.problems = await target.restore()
        result.restored = not result.problems


class _Inconclusive(Exception):
    """A step's check ran without a plugin it asked for: the bisect stops there."""

    def __init__(self, check: int, failed: dict[str, Failure]) -> None:
        super().__init__(check, failed)
        self.check = check
        self.failed = failed

    def found(self) -> str:
        names = ", ".join(self.failed)
        first = next(iter(self.failed))
        return (
            f"no culprit found: the result would be uncertain, so the bisect stopped at check "
            f"{self.check}: {names} did not start, and that check ran without it, so it did "
            f"not test what it claims; make {first} start ('plugbay info {first} --traceback' "
            f"says why), or disable it ('plugbay disable {first}'), then bisect again"
        )


async def _fails_alone(step: Callable[[Sequence[str], str], Awaitable[bool]]) -> bool:
    return not await step([], "no plugin active")


async def bisect_versions(
    target: BisectTarget,
    plugin_id: str,
    check: Check,
    on_step: Callable[[dict[str, Any]], None],
) -> BisectResult:
    """The first version of ``plugin_id`` that makes ``check`` fail."""
    await target.begin()
    versions, serving = await target.versions(plugin_id)
    result = BisectResult(None, 0)
    try:
        if serving not in versions:
            versions = [*versions, serving]
        candidates = versions[: versions.index(serving) + 1]
        if len(candidates) < 2:
            raise PluginStateError(
                f"has only {serving} in the store: no earlier version to compare with",
                plugin=plugin_id,
                hint="'plugbay install PATH' adds versions; 'plugbay bisect --check ...' "
                "without --plugin looks for the plugin instead",
            )

        async def step(version: str) -> bool:
            await target.move(plugin_id, version)
            ok, note = await check()
            result.checks += 1
            entry = {"check": result.checks, "what": f"{plugin_id} {version}", "passed": ok,
                     "note": note}  # fmt: skip
            result.steps.append(entry)
            on_step(entry)
            return ok

        if await step(candidates[-1]):
            result.found = (
                f"no version of {plugin_id} fails the check: it passes with {serving}, the "
                f"version serving and the newest a bisect tries ({candidates[0]} to {serving}), so "
                "there is no bad version to find (a bisect needs a check that fails now)"
            )
            return result
        if not await step(candidates[0]):
            result.found = (
                f"the check fails with the oldest version in the store too ({candidates[0]})"
            )
            return result
        lo, hi = 0, len(candidates) - 1  # candidates[lo] passes, candidates[hi] fails
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if await step(candidates[mid]):
                lo = mid
            else:
                hi = mid
        result.culprit = f"{plugin_id} {candidates[hi]}"
        result.found = (
            f"{plugin_id} {candidates[hi]}: the check passes with {candidates[lo]} and fails "
            f"from {candidates[hi]} on"
        )
        return result
    finally:
        result.problems = await target.restore()
        result.restored = not result.problems


# --------------------------------------------------------------------------- in the host


class ActiveSet:
    """The host side of a bisect (``host.trials.bisect``): remembers which plugins were
    active at which version, moves between prefixes of their start order, puts them back."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._baseline: dict[str, PluginManifest] | None = None
        self._order: list[str] = []
        self._needs: dict[str, list[str]] = {}

    @property
    def running(self) -> bool:
        return self._baseline is not None

    async def begin(self) -> tuple[list[str], dict[str, list[str]]]:
        manager = self.host.manager
        if self._baseline is None:
            order = manager.start_order()
            self._baseline = {
                pid: m for pid in order if (m := manager.record(pid).manifest) is not None
            }
            self._order = [pid for pid in order if pid in self._baseline]
            self._needs = {pid: sorted(manager.record(pid).needs) for pid in self._order}
        return list(self._order), dict(self._needs)

    def _active(self) -> list[str]:
        return [r.id for r in self.host.manager.list_plugins() if str(r.state) == "active"]

    async def activate(self, ids: Sequence[str]) -> Activated:
        if self._baseline is None:
            raise PluginStateError(
                "no bisect is under way", hint="start one: POST /api/v1/bisect (or begin())"
            )
        manager = self.host.manager
        wanted = set(ids)
        unknown = wanted - set(self._order)
        if unknown:
            raise PluginNotFound(
                "not among the plugins active when the bisect began: "
                + ", ".join(repr(u) for u in sorted(unknown)),
                hint="give ids from the order the bisect began with",
            )
        active = set(self._active())
        for pid in reversed(manager.start_order()):  # dependents first
            if pid in active and pid not in wanted:
                await manager.unload_plugin(pid, cascade=True)
        active = set(self._active())
        failed: dict[str, Failure] = {}
        for pid in self._order:
            if pid in wanted and pid not in active:
                try:
                    await manager.load_plugin(self._baseline[pid])
                except PlugbayError as exc:  # e.g. what it needs did not start: said, not fatal
                    failed[pid] = _failure(exc)
        now = self._active()
        for pid in self._order:
            if pid in wanted and pid not in now and pid not in failed:
                failed[pid] = _why_not(manager.record(pid))
        return Activated(now, failed)

    async def versions(self, plugin_id: str) -> tuple[list[str], str]:
        rec = self.host.manager.record(plugin_id)
        if rec.manifest is None or str(rec.state) != "active":
            raise self.host.manager.not_active(rec)
        store = self.host.store
        found: set[str] = set()
        if store is not None:
            from plugbay.model.versions import Version

            await store.settled(plugin_id)
            directory = store.root / plugin_id
            if directory.is_dir():
                for child in directory.iterdir():
                    if child.is_dir() and store.has(plugin_id, child.name):
                        found.add(child.name)
            ordered = sorted(found, key=Version.parse)
        else:
            ordered = []
        return ordered, str(rec.manifest.version)

    async def move(self, plugin_id: str, version: str) -> None:
        rec = self.host.manager.record(plugin_id)
        if rec.version != version:
            await self.host.manager.rollback_plugin(plugin_id, version, action="bisect")

    async def restore(self) -> list[str]:
        """Back to the baseline: the same plugins active, at the same versions."""
        baseline, self._baseline = self._baseline, None
        if baseline is None:
            return []
        manager = self.host.manager
        problems: list[str] = []
        for pid in self._order:
            rec = manager.record(pid)
            manifest = baseline[pid]
            try:
                if str(rec.state) != "active":
                    await manager.load_plugin(manifest)
                elif rec.manifest is not None and rec.manifest.version != manifest.version:
                    await manager.rollback_plugin(pid, str(manifest.version), action="bisect")
            except PlugbayError as exc:
                problems.append(f"{pid}: {exc.message}")
            rec = manager.record(pid)
            if str(rec.state) != "active" and not any(p.startswith(f"{pid}:") for p in problems):
                problems.append(f"{pid}: {rec.state} ({rec.reason})")
        return problems


def _failure(error: PlugbayError) -> Failure:
    return {"code": error.code, "message": error.message, "hint": error.hint}


def _why_not(rec: PluginRecord) -> Failure:
    """Why ``rec``, asked to start, is not active: the error it failed with, else its state."""
    if rec.error is not None:
        return _failure(rec.error)
    return {
        "code": "plugin_state",
        "message": f"plugin '{rec.id}' is {rec.state}" + (f": {rec.reason}" if rec.reason else ""),
        "hint": f"'plugbay info {rec.id}' says more",
    }
