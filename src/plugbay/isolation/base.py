"""The backend contract: everything the host needs from a backend and its handles.

A *backend* (:class:`Backend`) starts plugins; each started plugin is a *handle*
(:class:`PluginHandle`). The manager, the swapper, the supervisor (crash →
restart), the monitor, the profiler and the HTTP API use only the members named
here; none of them asks a handle what it happens to have. A new backend is a
subclass of both ABCs: mypy --strict and the ABC machinery refuse one that
misses an abstract member, and ``tests/backends/`` (the conformance suite) checks
that it means the same thing by each member as the others do.

Who does what
-------------
The manager does everything that is the same whatever the backend: it checks
parameters and results against the command's types, picks the timeout, counts
the call, and maps every failure to a :class:`~plugbay.api.errors.PlugbayError`.
A backend only moves a call to the plugin and back, and says when the plugin
died. Every member is called on the host's event loop unless it says otherwise.

Lifecycle of a handle
---------------------
::

    Backend.start ──► initialize ──► call* ──► cleanup ──► release
         │                 │                                  ▲
         └─ fails: raises  └─ fails: the manager calls cleanup (bounded) then release

``start(manifest, placement, data_dir)``
    Import the plugin where it runs and create its instance; ``initialize`` is
    separate. Raises a ``PlugbayError`` (``PluginLoadError``, ``ManifestError``,
    ``PluginCrashed`` when a worker died while starting); the manager records it.
    ``placement`` is where the host's policy put the plugin (limits, sandbox);
    a backend that has no sandbox ignores it.
``initialize(context, timeout)``
    Run the plugin's ``initialize(context)``. Raises :class:`CallTimeout` when
    ``timeout`` expired, the plugin's own exception when it raised (the manager
    wraps it in ``PluginInitError``), or a ``PlugbayError``.
``call(spec, params, timeout)``
    Run one command with parameters the manager already checked; returns the
    raw result (the manager checks it). Many calls may be in flight at once.

    - *Deadline*: past ``timeout`` seconds the command is cancelled where it runs
      and :class:`CallTimeout` is raised (the manager turns it into
      ``PluginTimeout``). A ``TimeoutError`` the plugin raises itself is the
      plugin's error, never a ``CallTimeout``.
    - *Cancellation*: cancelling the task that awaits ``call`` cancels the
      command where it runs (inline: ``CancelledError`` inside the coroutine;
      process: a ``Cancel`` frame to the worker) and re-raises
      ``CancelledError``. A ``def`` command run in a thread (``blocking=True``)
      cannot be interrupted: its result is dropped.
    - *Crash*: when the plugin's process dies, every call in flight fails at once
      with ``PluginCrashed`` (or ``ResourceLimitExceeded``, a subclass, when a
      limit killed it), never a hang, and :attr:`~PluginHandle.on_crash` is told.
    - Anything else the plugin raises is raised as is (the manager wraps it).
``cleanup(timeout)``
    Run the plugin's ``cleanup()``, bounded: past ``timeout`` it raises
    :class:`CallTimeout` and the plugin is abandoned (a worker is killed). After a
    crash it returns at once. Never called twice for a successful stop.
``release()``
    Forget the plugin: drop its modules, kill its worker, cancel the handle's own
    tasks. Synchronous, never raises, **idempotent** (the manager may call it after
    a failed start, after ``cleanup``, and once more when the backend closes).
``Backend.close()``
    Stop what the backend itself runs (the process backend's zygote) once its
    handles are released. Idempotent; the default does nothing.

What the host reads and sets (supervision, monitoring)
-------------------------------------------------------
:attr:`PluginHandle.isolated`
    ``True`` when the plugin runs apart from the host (its own process): it can
    die on its own, so :attr:`on_crash` may fire and a swap's probation watches it
    stay alive; ``False`` when it shares the host's process and loop (then a crash
    is the host's crash, and the monitor's loop watchdog covers it).
:attr:`PluginHandle.on_crash`
    Set by the manager (the supervisor): called once, on the loop, with the error
    when the plugin's process died or broke its protocol; not called after
    ``cleanup``/``release`` began. A handle that is not ``isolated`` never calls it.
:attr:`PluginHandle.on_security`
    Set by the manager: called with each denial or limit hit the sandbox reports
    (``{"kind": "denied" | "limit" | "killed" | "timeout", ...}``); becomes a
    ``security.*`` event. A backend without a sandbox never calls it.
*Listener handover* (a swap)
    The new version's handle reports security events from its start. The
    swapper takes ``on_crash`` away from the retiring handle when calls switch
    to the new one (a retiring version's death is never the plugin's crash),
    watches the new handle's ``on_crash`` itself during probation, then gives
    it the manager's listeners (:meth:`PluginHandle.attach`); a failed
    probation gives them back to the old handle, which kept serving.
:attr:`PluginHandle.pid`
    The plugin's own process id, or ``None`` when it shares the host's.
:attr:`PluginHandle.layers`
    The sandbox layers as applied, each ``{"name", "active", "detail", "guarantees"}``
    (``_layer.LayerStatus``); empty when none.
:meth:`PluginHandle.usage`
    What the plugin uses now (``rss_bytes``, ``cpu_seconds``, ``open_files``,
    ``threads``, ...), or ``None`` when it has no figures of its own (it shares
    the host's process: the monitor reports the host's, marked shared). Called
    from a worker thread; never raises (a failed reading is ``{"error": ...}``).
:meth:`PluginHandle.running`
    ``(loop-time start, command)`` of each call in flight, for the monitor's hung
    call alert. Inline, only calls that suspended are listed. Never raises.
:meth:`PluginHandle.alive`
    ``None`` while the plugin answers, else why not (a worker's heartbeat). May be
    called from any thread. The default: ``None``.
:meth:`PluginHandle.location`
    Where the plugin runs when that is another machine (``{"backend", "node", "mode",
    ...}``: ``plugbay info`` and the ``node`` label of its metrics), else ``None``.
:meth:`PluginHandle.dump_stacks`
    Every thread's stack where the plugin runs, as text, or ``None`` when it runs
    in the host (the monitor then reads the host's own task stacks). Called from a
    worker thread when :attr:`isolated`.

State handover (a swap)
-----------------------
:meth:`PluginHandle.export_state` returns ``(True, state)`` when the plugin
implements ``export_state()``, else ``(False, None)``; :meth:`import_state` hands
``state`` (plain data or the exported object) to the plugin's ``import_state``,
converted to its annotated type, and returns ``False`` when the plugin has none.
Both raise what the plugin raised (a worker: a ``PlugbayError`` naming it), or
``CallTimeout``; the swapper also bounds them. The default runs both on
:attr:`instance` in the host; a handle without an instance in the host must
override them.

Live configuration
------------------
:meth:`PluginHandle.change_config` gives the plugin a new, validated config through
its ``on_config_change(old, new)`` hook (``isolation.config_change``) and returns
``False`` when the plugin has none: the host then swaps it with state handover.
When the hook raises, the old config stays and the plugin's error is raised. The
default runs it on :attr:`instance`; a handle without one answers ``False`` unless
it overrides it (the process backend sends it to the worker).

Profiling
---------
:meth:`PluginHandle.profile` runs one call under cProfile where the plugin runs
and returns ``{"value": raw result, "report": text}``. The default profiles the
call in the host's process, which is right for a plugin that runs there; a
handle whose plugin runs elsewhere overrides it, or the default raises
:class:`NotSupported`.

:meth:`PluginHandle.sample` profiles the process that serves the plugin, as it
serves, for ``seconds``: a thread there samples every other thread's stack
(:mod:`plugbay.isolation.sampling`) and the answer is its ``Samples`` dict. The
default samples the host's own process (an inline plugin runs there); a handle whose
plugin runs elsewhere overrides it, or the default raises :class:`NotSupported`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from plugbay.api import CommandSpec, Plugin, PluginContext
from plugbay.api.errors import PlugbayError
from plugbay.isolation import handover
from plugbay.model.manifest import PluginManifest

if TYPE_CHECKING:
    from plugbay.isolation.policy import Placement
    from plugbay.monitor.bounds import Budget

__all__ = [
    "Backend",
    "CallTimeout",
    "CrashListener",
    "NotSupported",
    "PluginHandle",
    "SecurityListener",
    "deadline",
]

#: told once when an isolated plugin's process dies (see :attr:`PluginHandle.on_crash`)
CrashListener = Callable[[PlugbayError], None]
#: told of each denial or limit hit in a sandbox (see :attr:`PluginHandle.on_security`)
SecurityListener = Callable[[dict[str, Any]], None]


class CallTimeout(Exception):
    """The host's own time limit expired, as opposed to a ``TimeoutError`` the plugin
    raised itself (which is the plugin's error, with its own message)."""


class NotSupported(PlugbayError):
    """Raised by a contract member the plugin's backend cannot do (e.g. profiling a
    call in a process the host cannot reach); the message names the backend."""

    code = "not_supported"


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


class PluginHandle(abc.ABC):
    """One running plugin instance inside a backend (see the module docstring for
    each member's semantics)."""

    manifest: PluginManifest
    commands: Mapping[str, CommandSpec]
    #: the plugin object when it lives in the host's process, else None
    instance: Plugin | None

    #: runs apart from the host: it can die on its own (``on_crash``), has its own pid
    isolated: bool = False
    #: the plugin's own process, or None when it shares the host's
    pid: int | None = None
    #: the sandbox layers as applied (empty: none)
    layers: Sequence[Mapping[str, Any]] = ()
    #: the supervisor's listener: told once when the plugin's process dies
    on_crash: CrashListener | None = None
    #: the manager's listener: told of each denial or limit hit in the sandbox
    on_security: SecurityListener | None = None

    # -- lifecycle (every backend implements these) -------------------------------------

    @abc.abstractmethod
    async def initialize(self, context: PluginContext, timeout: float) -> None:
        """Run the plugin's ``initialize``; :class:`CallTimeout` past ``timeout``."""

    @abc.abstractmethod
    async def call(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any:
        """Run one command with checked parameters; returns the raw result.
        :class:`CallTimeout` past ``timeout``; ``PluginCrashed`` when the process died."""

    async def call_many(
        self, spec: CommandSpec, params: Sequence[dict[str, Any]], timeout: float
    ) -> list[Any]:
        """Run one command once per parameter set, all at once; each item is that call's
        raw result or the exception it raised (:class:`CallTimeout` past ``timeout``).
        A backend that can send the calls together overrides this (the process
        backend: one write for the batch, no task per call)."""
        calls = (self.call(spec, p, timeout) for p in params)
        return list(await asyncio.gather(*calls, return_exceptions=True))

    @abc.abstractmethod
    async def cleanup(self, timeout: float) -> None:
        """Run the plugin's ``cleanup``, bounded by ``timeout`` (:class:`CallTimeout`)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Forget the plugin's code and process. Idempotent, never raises."""

    # -- supervision ----------------------------------------------------------------------

    def attach(self, on_crash: CrashListener | None, on_security: SecurityListener | None) -> None:
        """Set the listeners the host is told through (a swap hands them over)."""
        self.on_crash = on_crash
        self.on_security = on_security

    def bind(self, budget: Budget | None, issued: Callable[[str], bool]) -> None:
        """The host's bounds on what this plugin may make it keep (log records, security
        reports, metric series, frames: ``monitor.bounds``), and the broker's word on
        which denials it issued to this plugin (so a plugin cannot pass off its own error
        as a host denial). A handle whose plugin shares the host's process (trusted,
        inline) ignores both: nothing it sends crosses a channel to be bounded."""
        return

    # -- what the monitor reads (defaults: the plugin shares the host's process) -----------

    def usage(self) -> dict[str, Any] | None:
        """What the plugin uses now, or None when it has no figures of its own."""
        return None

    def running(self) -> list[tuple[float, str]]:
        """(loop-time start, command) of each call in flight that the handle tracks."""
        return []

    def alive(self) -> str | None:
        """None while the plugin answers; otherwise why not."""
        return None

    def dump_stacks(self, *, tasks: bool = True) -> str | None:
        """The stacks where the plugin runs, or None when that is the host's process."""
        return None

    def location(self) -> dict[str, Any] | None:
        """Where the plugin runs when that is not this machine (a cluster's node: backend,
        node, mode), else None."""
        return None

    async def describe_commands(self, timeout: float) -> None:
        """Make every command's JSON Schemas known to ``CommandSpec.schema`` (a worker builds
        them only when asked); here they are already."""

    # -- state handover and profiling (defaults: on the instance in the host) ---------------

    async def export_state(self, timeout: float) -> tuple[bool, Any]:
        """``(True, state)`` from the plugin's ``export_state()``, else ``(False, None)``."""
        if self.instance is None:
            return False, None
        return await handover.export_state(self.instance)

    async def change_config(self, config: Mapping[str, Any], timeout: float) -> bool:
        """Give the plugin a new (validated) config through its ``on_config_change`` hook;
        False when it has none (the host swaps it with state handover instead)."""
        if self.instance is None:
            return False
        from plugbay.isolation.config_change import change_config

        return await change_config(self.instance, config)

    async def import_state(self, state: Any, timeout: float) -> bool:
        """Hand ``state`` to the plugin's ``import_state``; False when it has none."""
        if self.instance is None:
            return False
        return await handover.import_state(self.instance, state)

    async def profile(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """One call under cProfile where the plugin runs: ``{"value", "report"}``."""
        if self.instance is None:
            raise NotSupported(
                "its backend cannot profile a call: the plugin does not run in this process",
                plugin=self.manifest.id,
                hint="profile it under the inline or process backend",
            )
        from plugbay.isolation.profiling import profiled

        return await profiled(self.call(spec, params, timeout))

    async def sample(self, seconds: float, interval: float, timeout: float) -> dict[str, Any]:
        """Sample the stacks of the process serving the plugin for ``seconds``."""
        if self.instance is None:
            raise NotSupported(
                "its backend cannot sample the process serving it",
                plugin=self.manifest.id,
                hint="profile it under the inline or process backend",
            )
        from plugbay.isolation.sampling import sampled

        return dict(await sampled(seconds, interval))


@dataclass(frozen=True)
class EnvironmentPaths:
    """A plugin environment's zygote: it imports from the environment's site-packages,
    then from plugbay's runtime packages (a directory of links), and nothing else of the
    host's site-packages; a sandboxed worker may read exactly those (and the stdlib)."""

    site_packages: str
    runtime: str
    read_paths: tuple[str, ...]


class Backend(abc.ABC):
    """Starts plugins; see the module docstring."""

    #: the name the policy and the manifests use (``inline``, ``process``)
    name: ClassVar[str]

    @abc.abstractmethod
    async def start(
        self,
        manifest: PluginManifest,
        placement: Placement | None = None,
        data_dir: Path | None = None,
        environment: EnvironmentPaths | None = None,
    ) -> PluginHandle:
        """Import the plugin and create its instance (``initialize`` is separate).

        ``environment`` is the plugin's own Python environment when its manifest
        declares requirements (built by the runtime before this call); a backend
        that runs plugins in the host's interpreter ignores it (an inline plugin's
        requirements must fit the host's environment, which the runtime checks)."""

    async def forget_environment(self, path: Path) -> None:
        """The plugin environment at ``path`` was removed (``plugbay uninstall``, ``plugbay
        env gc``): stop what the backend runs from it (a warm zygote) once no worker of it
        is left, so it runs no longer than its files. Nothing, for a backend that keeps
        nothing per environment."""
        return

    async def close(self) -> None:
        """Stop what the backend itself runs once its handles are released. Idempotent."""
        return
