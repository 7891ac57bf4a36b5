"""The process backend: each plugin in its own worker process, forked from the zygote.

The host never imports a sandboxed plugin's code. It sends the worker the
manifest's path; the worker imports, checks and runs the plugin and answers in
frames. Calls carry request ids, so many are in flight at once; a call past its
timeout is cancelled in the worker. A worker that dies or breaks the protocol
fails every call in flight with :class:`PluginCrashed` at once, never a hang.

A plugin the host's policy does not trust (``isolation.policy``) gets a
sandboxed worker: the zygote applies every layer of ``isolation.limits``
before the plugin's code is imported, and the worker's guard names each denial
(``isolation.guard``). When a worker dies, the zygote tells the host how; the
handle turns that into the error its callers see: the limit it hit (the cgroup's
OOM killer, ``SIGXCPU``), a forbidden system call (``SIGSYS``), or a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from plugbay.api import CommandSpec, Plugin, PluginContext
from plugbay.api.errors import (
    PlugbayError,
    PluginCallError,
    PluginCrashed,
    ResourceLimitExceeded,
)
from plugbay.isolation import frames, handover, sampling
from plugbay.isolation._calls import RequestsToWorker
from plugbay.isolation._cgroups import CgroupLayer
from plugbay.isolation._env_zygotes import EnvironmentZygotes
from plugbay.isolation._exit_words import crashed
from plugbay.isolation._host_bounds import BoundedByHost
from plugbay.isolation._process_parts import (
    RemoteSpec,
    await_listener,
    bound_file_size,
    du,
    enforce_storage,
    for_the_worker,
    host_reply,
    look_at_image,
    process_usage,
    size_text,
    worker_request,
)
from plugbay.isolation._start_memory import (
    OUT_OF_MEMORY,
    at_call,
    at_load,
    out_of_memory_words,
    set_where,
)
from plugbay.isolation.affinity import Follow
from plugbay.isolation.base import Backend, CallTimeout, EnvironmentPaths, PluginHandle, deadline
from plugbay.isolation.heartbeat import Beat, Pulse, held_by, hung_error, pulse_for
from plugbay.isolation.identity import judge_error
from plugbay.isolation.offered_services import offered_by
from plugbay.isolation.policy import Placement
from plugbay.isolation.quota import QuotaMounts, QuotaStatus
from plugbay.isolation.requests import Requests
from plugbay.isolation.seccomp_notify import SeccompListener
from plugbay.isolation.zygote import Child, Zygote
from plugbay.model.manifest import PluginManifest
from plugbay.monitor.bounds import Budget

__all__ = ["HostCallHandler", "ProcessBackend", "ProcessHandle", "RemoteSpec"]

log = logging.getLogger("plugbay.isolation.process")

#: (calling plugin, target ("service:NAME@RANGE" or a plugin id), command, params) -> value
HostCallHandler = Callable[[str, str, str, dict[str, Any]], Awaitable[Any]]


class ProcessBackend(EnvironmentZygotes, Backend):
    name = "process"

    def __init__(self, host_call: HostCallHandler) -> None:
        self._host_call = host_call
        self.zygote = Zygote()
        #: one zygote per plugin environment (by its site-packages), started on first use
        self.env_zygotes: dict[str, Zygote] = {}
        #: workers not yet reaped (their cgroups are removed once they are)
        self._live: set[ProcessHandle] = set()
        #: the storage images mounted at sandboxed plugins' data directories
        self.quotas = QuotaMounts()

    async def start(
        self,
        manifest: PluginManifest,
        placement: Placement | None = None,
        data_dir: Path | None = None,
        environment: EnvironmentPaths | None = None,
    ) -> ProcessHandle:
        """A worker for the plugin: sandboxed when the placement says so (the host's policy),
        forked from its environment's zygote when it has one of its own."""
        request = worker_request(manifest, placement, data_dir, loop_probe=True)
        storage = await enforce_storage(self.quotas, manifest, placement, data_dir)
        quota = placement.limits.get("storage") if placement is not None else None
        if "sandbox" in request and not storage.enforced and quota is not None:
            bound_file_size(request, int(quota))
        zygote = self.zygote
        if environment is not None:
            zygote = self.env_zygotes.setdefault(environment.site_packages, Zygote(environment))
        child, sock, (listener, probe) = await self._spawn(zygote, request, storage, data_dir)
        handle = ProcessHandle(
            manifest,
            child,
            sock,
            self._host_call,
            zygote=zygote,
            placement=placement,
            cgroup=request.get("sandbox", {}).get("cgroup"),
            data_dir=data_dir,
        )
        handle.storage = storage
        if listener is not None:
            handle.seccomp = SeccompListener(listener, handle._report, loop_probe=probe)
        if storage.enforced and data_dir is not None:
            quotas = self.quotas
            handle.on_exited = lambda: quotas.detach(data_dir)
        try:
            await handle.open()
        except BaseException:  # a start cut short: its worker is killed, and reaped in close()
            handle.release()
            raise
        finally:
            if handle._reaper is not None:
                self._live.add(handle)
                handle._reaper.add_done_callback(lambda _task: self._live.discard(handle))
        return handle

    async def _spawn(
        self, zygote: Zygote, request: dict[str, Any], storage: QuotaStatus, data_dir: Path | None
    ) -> tuple[Child, socket.socket, tuple[int | None, bool]]:
        """Fork the worker (and take its seccomp listener when sandboxed); a fork that fails
        releases the storage image mounted for it."""
        listener: tuple[int | None, bool] = (None, False)
        try:
            if "sandbox" in request:
                child, sock, report = await zygote.spawn_sandboxed(request)
                listener = await await_listener(report)
            else:
                child, sock = await zygote.spawn(request)
        except BaseException:
            if storage.enforced and data_dir is not None:
                await asyncio.to_thread(self.quotas.detach, data_dir)
            raise
        return child, sock, listener

    async def close(self) -> None:
        """Stop the zygote once every worker is reaped and its cgroup removed (bounded)."""
        live = list(self._live)
        for handle in live:
            handle.release()
        reapers = [h._reaper for h in live if h._reaper is not None]
        if reapers:
            await asyncio.wait(reapers, timeout=3)
        for handle in list(self._live):  # the zygote never told: remove what is left
            handle.child.close()
            if handle.seccomp is not None:
                handle.seccomp.close()
            if handle.cgroup is not None:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(CgroupLayer(handle.cgroup).remove)
        await pulse_for(asyncio.get_running_loop()).quiet()  # ends with the loop's last worker
        for zygote in [self.zygote, *self.env_zygotes.values()]:
            await zygote.stop()
        self.env_zygotes.clear()
        unreaped = [h._reaper for h in list(self._live) if h._reaper is not None]
        for reaper in unreaped:  # no zygote is left to tell their exits
            reaper.cancel()
        await asyncio.gather(*unreaped, return_exceptions=True)
        await asyncio.to_thread(self.quotas.close)


class ProcessHandle(sampling.SampledInWorker, RequestsToWorker, BoundedByHost, PluginHandle):
    """A plugin in its own worker process: isolated, so it can crash on its own
    (``on_crash``), has its own figures, stacks and profiler, and moves its state
    through frames."""

    isolated = True

    def __init__(
        self,
        manifest: PluginManifest,
        child: Child,
        sock: socket.socket,
        host_call: HostCallHandler,
        *,
        zygote: Zygote | None = None,
        placement: Placement | None = None,
        cgroup: str | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.placement = placement
        self.cgroup = cgroup
        self.data_dir = data_dir
        #: the sandbox layers as the worker applied them (empty: not sandboxed)
        self.layers: list[dict[str, Any]] = []
        #: what this plugin may make the host keep (``monitor.bounds``); set by the manager
        self.budget: Budget | None = None
        #: whether the host issued this refusal token to this plugin (isolation.refusals)
        self.issued: Callable[[str], bool] = lambda token: False
        self._zygote = zygote
        self._exit: asyncio.Future[int] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._quota: asyncio.Task[None] | None = None
        #: what enforces the storage quota of this worker's data directory
        self.storage = QuotaStatus(False, "no storage quota applies")
        #: called (in a thread) once the worker has exited: releases its storage mount
        self.on_exited: Callable[[], None] | None = None
        #: the worker's seccomp filter listener: denied calls, answered and reported here
        self.seccomp: SeccompListener | None = None
        self._limit_error: PlugbayError | None = None
        self._limits_told: dict[str, float] = {}
        self.child = child  # the worker: its pid, and its pidfd (what signals it)
        self.pid: int = child.pid
        self.commands: Mapping[str, CommandSpec] = {}
        self.instance: Plugin | None = None
        self._sock = sock
        self._host_call = host_call
        #: the requests in flight: futures resolved by the channel, one watchdog for deadlines
        self._requests = Requests(self._expired, f"plugbay-watchdog-{self.pid}")
        # idle class while held: only a sandboxed worker in a CPU cgroup of its own, idle
        # among its own tasks alone and unable to fork a child that would inherit it
        sandboxed = placement is not None and placement.sandboxed
        self.follow = Follow(self.pid, idle_class=sandboxed and cgroup is not None)
        self.follow.gone = child.exited
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loaded: asyncio.Future[frames.Loaded] | None = None
        self._channel: frames.Channel | None = None
        self._dead: PlugbayError | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: the loop's heartbeat, while it ticks for this worker (``isolation.heartbeat``)
        self._pulse: Pulse | None = None
        self.beat = Beat()
        #: the calls its worker runs in its loop (``Loaded.inline``), and the last one past
        #: its deadline since the worker last answered a ping (``heartbeat.held_by``)
        self._inline: frozenset[str] = frozenset()
        self._overran: str | None = None
        #: a kernel-enforced storage image the pulse looks at (its quota), and when next
        self._full_quota: int | None = None
        self._full_told: int | None = None
        self._next_storage = 0.0
        self._closing = False
        self._beats = itertools.count(1)
        #: private memory (USS) as last read, when, and how old it may be when shown
        self._uss: int | None = None
        self._uss_at = -1e9
        self.uss_max_age = 10.0
        self._stacks_seen = 0
        self._stacks_fd = -1  # the worker's stack file's descriptor, as Loaded says
        self._metrics: Any = None

    async def open(self) -> None:
        loop = self._loop = self._on_loop()  # its calls come from this loop's thread
        if self.seccomp is not None:
            self.seccomp.start(loop)
        if self._zygote is not None:
            self._exit = self._zygote.exited(self.pid)
            self._reaper = asyncio.create_task(self._reap(), name=f"plugbay-reaper-{self.pid}")
        await loop.create_connection(self._make_channel, sock=self._sock)

    def _make_channel(self) -> frames.Channel:
        # set before the connection is made: uvloop may deliver the first frames before
        # create_connection returns
        self._channel = frames.Channel(self._dispatch, self._lost)
        self._channel.join_turn = False  # a call among others says so (``_exchange``)
        self._channel.join_after_read = True  # the callers a read woke send together
        self._channel.settle = self._requests.answer  # a lone answer (``_dispatch``'s first case)
        return self._channel

    async def _reap(self) -> None:
        """When the worker has exited: read its cgroup's OOM count, then remove the cgroup
        (which kills anything it left behind)."""
        assert self._exit is not None
        await asyncio.shield(self._exit)
        self.child.close()
        if self.seccomp is not None:
            self.seccomp.close()
        if self.cgroup is not None:
            group = CgroupLayer(self.cgroup)
            self._oom_kills = group.oom_kills()
            try:
                await asyncio.to_thread(group.remove)
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", self.cgroup, exc)
        if self.on_exited is not None:
            exited, self.on_exited = self.on_exited, None
            await asyncio.to_thread(exited)
        if self._zygote is not None:
            self._zygote.forget(self.pid)

    _oom_kills = 0

    # -- what arrives ----------------------------------------------------------------

    def _lost(self, reason: str | None, protocol_error: bool) -> None:
        if protocol_error:
            self._report({"kind": "killed", "layer": "protocol", "detail": str(reason)})
            self._crashed(f"its worker broke the protocol ({reason}) and was stopped")
        elif self._dead is None and not self._closing and self._exit is not None:
            # how it died (the zygote's wait status) names the limit it hit, if any
            task = asyncio.get_running_loop().create_task(self._diagnose(reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif reason:
            self._crashed(f"its worker's channel failed: {reason}")
        else:
            self._crashed("its worker process exited")

    async def _diagnose(self, reason: str | None) -> None:
        assert self._exit is not None
        status: int | None = None
        try:
            status = await asyncio.wait_for(asyncio.shield(self._exit), 0.5)
            if self._reaper is not None:
                await asyncio.wait_for(asyncio.shield(self._reaper), 0.5)
        except TimeoutError:
            pass
        if self._limit_error is not None:
            self._crashed(self._limit_error.message, error=self._limit_error)
            return
        if status is None:
            self._crashed(
                f"its worker's channel failed: {reason}" if reason else "its worker vanished"
            )
            return
        code = os.waitstatus_to_exitcode(status)
        limits = self.placement.limits if self.placement is not None else {}
        if code == -signal.SIGKILL and self._oom_kills:
            error: PlugbayError = self._limit(
                "memory",
                f"its worker went over its memory limit ({size_text(limits.get('memory'))}, "
                f"set by {set_where(self.placement)}) and the kernel's OOM killer "
                "stopped it",
            )
        elif (placement := self._out_of_memory(code)) is not None:
            error = self._limit("memory", *out_of_memory_words(placement))
        elif code == -signal.SIGXCPU:
            error = self._limit(
                "cpu_seconds",
                f"its worker used up its CPU time ({limits.get('cpu-seconds')} s) and was killed",
            )
        else:
            marked = self.child.ran_out_of_memory()
            past_load = self._loaded is not None  # set as Load is sent: its code may run
            error = crashed(self.manifest, self.placement, self.pid, code, marked, past_load)
            if code == -signal.SIGSYS:
                self._report({"kind": "killed", "layer": "seccomp", "detail": "SIGSYS"})
        self._crashed(error.message, error=error)

    def _out_of_memory(self, code: int) -> Placement | None:
        """The placement whose memory limit ended the worker's start: its exit code is
        ``OUT_OF_MEMORY`` and it left its memory mark (``_memory_mark``); else None."""
        placement = self.placement
        if code != OUT_OF_MEMORY or placement is None or not placement.limits.get("memory"):
            return None
        return placement if self.child.ran_out_of_memory() else None

    def _limit(self, limit: str, message: str, hint: str | None = None) -> ResourceLimitExceeded:
        self._report({"kind": "limit", "limit": limit, "detail": message})
        return ResourceLimitExceeded(
            message,
            plugin=self.manifest.id,
            hint=hint
            or f"raise resources.{limit.replace('_', '-')} in the manifest (the host's "
            "policy caps it); the worker is being replaced",
            details={"pid": self.pid, "limit": limit},
        )

    def _report(self, event: dict[str, Any]) -> None:
        """A security event for the manager: one the host saw itself (a timeout, a kill, a
        limit it measured) unless ``source`` says otherwise."""
        event.setdefault("source", "host")
        if event.get("kind") == "limit":
            # the host's own look at a limit (a full storage image) is dropped when the
            # worker just told of the same hit: one hit, one event
            now = time.monotonic()
            limit = str(event.get("limit"))
            if event.get("layer") != "quota":
                self._limits_told[limit] = now
            elif now - self._limits_told.get(limit, -10.0) < 1.0:
                return
        if self.on_security is not None:
            try:
                self.on_security(event)
            except Exception:  # reporting must never take the handle down
                log.exception("security event handler failed")

    def _dispatch(self, message: frames.Message) -> None:
        if type(message) is frames.Reply:  # the hot path
            self._requests.answer(message.id, message.value)
        elif isinstance(message, frames.Fail):
            self._failed(message)
        elif isinstance(message, frames.Security):
            self._worker_security(message)
        elif isinstance(message, frames.Loaded):
            if self._loaded is None or self._loaded.done():  # told once, answering Load
                raise frames.FrameError("a Loaded frame after its load")
            self.layers = list(message.layers)
            self._stacks_fd = message.stacks_fd
            self._loaded.set_result(message)
        elif isinstance(message, frames.Log):
            try:
                self._log(message)
            except Exception:  # a record the host cannot keep is dropped, never fatal
                if self.budget is not None:
                    self.budget.drop("log_malformed")
        elif isinstance(message, frames.Metrics):
            if self._metrics is not None:
                self._metrics.import_custom(message.data, self.budget, self)
        elif isinstance(message, frames.Pong):
            self.beat.answered(asyncio.get_running_loop().time())
            self._overran = None
        elif isinstance(message, frames.HostCall):
            task = asyncio.create_task(self._serve_host_call(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            raise frames.FrameError(f"unexpected {type(message).__name__} from a worker")

    def _failed(self, message: frames.Fail) -> None:
        """A request failed in the worker: the error as the host judges it; a limit hit
        replaces the worker at once."""
        placement = self.placement
        error = judge_error(
            message.error,
            self.manifest.id,
            granted=placement.effective if placement is not None else (),
            sandboxed=bool(placement and placement.sandboxed),
            issued=self.issued,
        )
        if error.details.get("replace"):  # a limit hit: the worker is replaced at once
            # a memory limit says where it was set, as it loaded or in a call
            said_where = at_load if message.id == 0 else at_call
            error = said_where(error, self.manifest, self.placement)
            self._limit_error = error
            self._settle(message.id, error=error)
            self._crashed(error.message, error=error)
            return
        if message.id == 0:  # Load's answer; before Load, the sandbox's refusal to start
            self._load_failed(error)
        else:
            self._settle(message.id, error=error)

    def _settle(
        self, request: int, *, value: Any = None, error: BaseException | None = None
    ) -> None:
        self._requests.settle(request, value, error)

    async def _serve_host_call(self, message: frames.HostCall) -> None:
        self._send(await host_reply(self._host_call, self.manifest.id, message))

    def _crashed(self, reason: str, *, error: PlugbayError | None = None) -> None:
        if self._dead is None:
            self._dead = error or PluginCrashed(
                reason,
                plugin=self.manifest.id,
                hint=f"'plugbay info {self.manifest.id}' and the host log say more",
                details={"pid": self.pid},
            )
        self._requests.fail_all(self._dead)
        if self._loaded is not None and not self._loaded.done():
            self._loaded.set_exception(self._dead)
        self._kill()
        self._stop_beating()
        if self.on_crash is not None and not self._closing:
            self.on_crash(self._dead)

    def _expired(self, request: int, what: str) -> None:
        if what in self._inline:  # a def command past its deadline holds the loop no more
            self._overran = what
        self._send(frames.Cancel(request))
        self._settle(request, error=CallTimeout())
        self._report({"kind": "timeout", "operation": what, "detail": "ran past its time limit"})

    def start_heartbeat(self) -> None:
        """Ping the worker; if its loop stays silent past the timeout it is hung, and killed.
        One task per loop ticks for every worker (``isolation.heartbeat``): a busy worker is
        pinged every ``beat.interval``; an idle one rests, pinged every ``beat.idle_ping``."""
        loop = asyncio.get_running_loop()
        self.beat.started(loop.time())  # idle: rests from its first tick
        self._pulse = pulse_for(loop)
        self._pulse.join(self)
        quota = self.placement.limits.get("storage") if self.placement is not None else None
        if self.placement is not None and self.placement.sandboxed and quota is not None:
            if self.storage.enforced:
                self._full_quota = int(quota)  # looked at by the pulse
            else:
                self._quota = asyncio.create_task(
                    self._watch_storage(int(quota)), name=f"plugbay-quota-{self.pid}"
                )

    def _stop_beating(self) -> None:  # stopping or gone: the pulse ends with its last worker
        pulse, self._pulse = self._pulse, None
        if pulse is not None:
            pulse.leave(self)

    def _busy(self, now: float) -> bool:
        return self.beat.busy(now, bool(self._requests.inflight))

    #: seconds between two measures of a sandboxed plugin's data directory
    storage_interval = 0.5
    storage_at = "here"  # where the worker's context.storage is kept ("host": on Ray)
    storage_bytes: int | None = None

    async def _watch_storage(self, quota: int) -> None:
        """The storage quota: the data directory is measured twice a second; growing past
        the quota fails the calls in flight and replaces the worker. (A single file is
        bounded at once by RLIMIT_FSIZE; the policy keeps file-size at most the quota.)"""
        assert self.data_dir is not None
        baseline = await asyncio.to_thread(du, self.data_dir)
        self.storage_bytes = baseline
        loop = asyncio.get_running_loop()
        while self._dead is None:
            idle = not self._busy(loop.time())
            await asyncio.sleep(self.beat.idle_interval if idle else self.storage_interval)
            used = await asyncio.to_thread(du, self.data_dir)
            self.storage_bytes = used
            if used > quota and used > baseline:
                error = self._limit(
                    "storage",
                    f"its data directory holds {size_text(used)}, over its storage quota of "
                    f"{size_text(quota)}; its worker was stopped",
                )
                self._crashed(error.message, error=error)
                return

    def _look_full(self, quota: int) -> None:
        """The kernel enforces the quota; the host only notices when the image is full,
        so a write refused where Python never saw it (ctypes, C code) is reported too."""
        assert self.data_dir is not None
        seen = look_at_image(self.data_dir, quota, self._full_told)
        if seen is None:
            self._full_quota = None
            return
        self.storage_bytes, self._full_told, event = seen
        if event is not None:
            self._report(event)

    #: seconds between two looks at a kernel-enforced image (is it full?) while busy
    storage_full_interval = 0.1

    def pulse(self, now: float, stalled: float) -> bool:
        """One tick of the loop's heartbeat (``isolation.heartbeat``): the storage image's
        look and a ping when due, or the verdict that the worker is hung."""
        if self._dead is not None or self._pulse is None:
            return False
        busy = self._busy(now)
        self.follow.tick(busy)  # idle, or its caller's core shared: free to run on any core
        # a worker woken from rest by a call is looked at now, not at its idle cadence
        soon = now + self.storage_full_interval
        look = now >= self._next_storage or (busy and self._next_storage > soon)
        if self._full_quota is not None and look:
            self._look_full(self._full_quota)
            every = self.storage_full_interval if busy else self.beat.idle_interval
            self._next_storage = now + every
        due = self.beat.due(now, stalled, busy)
        if due is None and self.beat.silent(now) > self.beat.interval:
            self._held(now)  # a late pong: is a def call the reason (seen, for its end)?
        elif due == "hung":
            if self._held(now) is not None:
                return True  # a def command's silence, within its time limit
            self._hung(self.beat.silent(now))
            return False
        if due == "ping":
            self.beat.pinged_at = now
            self._send(frames.Ping(next(self._beats)))
        return True

    def _held(self, now: float) -> str | None:
        """The def command whose call is what keeps the worker silent now, as far as the
        host can tell (``heartbeat.held_by``); None: its silence is a hang."""
        calls, pinged = self._requests, self.beat.pinged_at
        held = held_by(calls.inflight, self._inline, pinged, now)
        if held is None and calls.abandoned:  # given up on, maybe still running there
            held = held_by(calls.abandoned, self._inline, pinged, now)
        return self.beat.held(now, held)  # one just answered: its pong may be on its way

    def _hung(self, silent: float) -> None:
        """Kill the silent worker once its stacks are read: in a thread, as the read waits
        for the worker (up to 0.3 s) and the loop runs every plugin's calls."""
        task = asyncio.get_running_loop().create_task(self._hung_with_stacks(silent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hung_with_stacks(self, silent: float) -> None:
        stacks = "(none: the host stopped before they were read)"
        try:  # from /proc; a plugin that spoils them is killed all the same
            stacks = await asyncio.to_thread(self.dump_stacks, tasks=False)
        except Exception as exc:
            stacks = f"(none: {exc})"
        finally:
            self._kill_hung(silent, stacks)

    def _kill_hung(self, silent: float, stacks: str) -> None:
        """Kill the silent worker, its stacks (what it was doing) in the plugin's log."""
        if self._dead is not None:
            return
        with contextlib.suppress(OSError):
            logging.getLogger(f"plugbay.plugin.{self.manifest.id}").error(
                "worker %d stopped answering its heartbeat; its stacks: (as the worker wrote "
                "them, and its plugin can write there too)\n%s",
                self.pid,
                stacks,
            )
        error = hung_error(self.manifest.id, self.pid, silent, self._overran)
        past = f", '{self._overran}' past its time limit" if self._overran else ""
        self._report(
            {"kind": "killed", "layer": "heartbeat", "detail": f"{silent:.1f} s silent{past}"}
        )
        self._crashed(error.message, error=error)

    async def initialize(self, context: PluginContext, timeout: float) -> None:
        self._metrics = context.metrics
        env = context.environment
        self._loaded = self._loaded or asyncio.get_running_loop().create_future()
        if self.seccomp is not None:  # its runtime's own denials come before its plugin
            await self.seccomp.runtime_ready(min(timeout, 5.0), self._exit)
        self._send(
            frames.Load(
                manifest_path=str(self.manifest.path),
                plugin_id=self.manifest.id,
                config=context.config.to_dict(),
                data_dir=str(env.data_dir),
                host_version=env.host_version,
                mode=env.mode,
                secrets={n: context.secrets.get(n) for n in context.secrets.names()},
                unset_secrets=context.secrets.unset(),
                rules=self._rules(),
                origin=self.manifest.origin,
                storage=self.storage_at,
                manifest=for_the_worker(self.manifest),
                bounds=self._bounds_for_worker(),
                services=offered_by(context.services, self.manifest, self.placement),
            )
        )
        try:
            async with deadline(timeout):
                loaded = await self._loaded
                self.commands = {c.name: RemoteSpec(c) for c in loaded.commands}
                self._inline = frozenset(loaded.inline)
                await self._request(frames.Init, timeout, "initialize")
        except CallTimeout:
            self._kill()
            raise
        self.start_heartbeat()

    def _rules(self) -> dict[str, Any]:
        """What the worker's guard allows, and which layers the host hears itself."""
        if self.placement is None or not self.placement.sandboxed:
            return {}
        rules = self.placement.rules()
        rules["kernel_reports"] = ["seccomp"] if self.seccomp is not None else []
        return rules

    async def describe_commands(self, timeout: float) -> None:
        """Ask the worker for its commands' JSON Schemas once, and keep them (what only
        ``plugbay info`` and the HTTP API show: no idle worker builds them)."""
        unknown = [
            s for s in self.commands.values() if isinstance(s, RemoteSpec) and s.schemas is None
        ]
        if not unknown:
            return
        reply = await self._request(frames.Describe, timeout, "describing its commands")
        for spec in unknown:
            schema = reply.get(spec.name) if isinstance(reply, dict) else None
            if not isinstance(schema, dict):
                raise PluginCallError(
                    f"the worker of {self.manifest.id} sent no JSON Schemas for its command "
                    f"'{spec.name}'",
                    plugin=self.manifest.id,
                    hint="its worker is broken or not plugbay's; restart the plugin "
                    f"(plugbay restart {self.manifest.id})",
                )
            spec.schemas = schema

    async def export_state(self, timeout: float) -> tuple[bool, Any]:
        """The plugin's ``export_state()`` in its worker, as plain data (a reload)."""
        reply = await self._request(frames.ExportState, timeout)
        return bool(reply["supported"]), reply["state"]

    async def change_config(self, config: Mapping[str, Any], timeout: float) -> bool:
        """The plugin's ``on_config_change`` in its worker; False when it has none."""
        return bool(await self._request(lambda r: frames.ChangeConfig(r, dict(config)), timeout))

    async def import_state(self, state: Any, timeout: float) -> bool:
        """Hand ``state`` to the plugin's ``import_state`` in its worker (a reload)."""
        plain = handover.plain_state(state)
        return bool(await self._request(lambda r: frames.ImportState(r, plain), timeout))

    async def cleanup(self, timeout: float) -> None:
        self._closing = True
        self._stop_beating()
        if self._quota is not None:
            self._quota.cancel()
        if self._dead is not None:
            return
        try:
            await self._request(frames.Cleanup, timeout, "cleanup")
        finally:
            self._kill()

    async def profile(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Run one call under the profiler in the worker: ``{"value", "report"}``."""
        strict = getattr(params, "strict", True)
        out: dict[str, Any] = await self._request(
            lambda request: frames.Profile(request, spec.name, dict(params), strict), timeout
        )
        return out

    def running(self) -> list[tuple[float, str]]:
        """(loop-time start, command) of each call in flight, for the monitor."""
        return self._requests.running()

    def alive(self) -> str | None:
        """None while the worker answers its heartbeat; otherwise why not."""
        if self._dead is not None:
            return str(self._dead.message)
        if self._pulse is None:
            return None
        # from any thread (a /metrics scrape): the loop's clock is time.monotonic
        now = time.monotonic()
        silent = self.beat.silent(now)
        if silent > self.beat.interval * 3:
            if self._held(now) is not None:
                return None  # busy in a def command, within its time limit
            return f"its worker has not answered its heartbeat for {silent:.1f} s"
        return None

    def dump_stacks(self, *, tasks: bool = True) -> str:
        """Every thread's stack in the worker now (faulthandler; works while it is blocked),
        and its asyncio tasks' when ``tasks`` (its loop must run to give those)."""
        from plugbay.isolation.diagnostics import read_stacks

        text, self._stacks_seen = read_stacks(
            self.pid, seen=self._stacks_seen, tasks=tasks, fd=self._stacks_fd
        )
        return text

    def usage(self) -> dict[str, Any]:
        """What the worker uses now (psutil): memory, CPU time, I/O, open files, threads."""
        now = time.monotonic()
        fresh = now - self._uss_at >= self.uss_max_age  # the costly part, read less often
        figures = process_usage(self.pid, uss=fresh)
        if "error" not in figures:
            if fresh:
                self._uss_at, self._uss = now, figures["uss_bytes"]
            else:
                figures["uss_bytes"] = self._uss
            figures["storage_bytes"] = self.storage_bytes
            watched = self._quota is not None or self._full_quota is not None
            figures["storage_quota"] = self.storage.mechanism if watched else None
            figures["sandboxed"] = bool(self.placement and self.placement.sandboxed)
        return figures

    def release(self) -> None:
        self._closing = True
        if not self.reaped:  # a dying worker held to its caller's busy core waits there
            self.follow.release()
        self._kill()
        if self.seccomp is not None and self._reaper is None:
            self.seccomp.close()  # no zygote to say it exited: nothing is left to answer
        self._stop_beating()
        self._requests.stop()
        if self._quota is not None:
            self._quota.cancel()
        if self._channel is not None:
            self._channel.close()

    @property
    def reaped(self) -> bool:  # its exit collected by the zygote: the pid may be another's now
        return self._exit is not None and self._exit.done() and not self._exit.cancelled()

    def _kill(self) -> None:
        if not self.reaped:
            self.child.kill()
