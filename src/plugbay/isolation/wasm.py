"""The Wasm backend: a plugin is a WebAssembly core module run by wasmtime in the host.

A manifest with ``runtime = "wasm"`` names the module (``entry``) and declares its
commands with their types (``model.wasm_commands``); the manager checks every
call against them, as for a Python plugin. Each plugin gets

* an **engine and store of its own** (its interruptions reach only its calls),
  the compiled module loaded from the host's cache (``Module.serialize``) so a
  restart does not compile again;
* **one thread** that runs its instance: calls queue there, one at a time, and
  never block the host's event loop (a lone short call is waited for in place, for
  at most a third of a millisecond: ``isolation._wasm_thread``);
* **nothing but what it was granted** (deny by default): WASI sees only its data
  directory (``/data``) and granted ``read:``/``write:`` paths, no environment,
  no arguments, no sockets; its linear memory is capped by ``[resources] memory``
  (store limits); its host requests (log, storage, events, services, secrets) go
  through :class:`WasmHandle`, which knows which plugin it serves, never from
  what a request says;
* **limits per call**: past its deadline (the call timeout) or its CPU bound
  (``[resources] cpu-seconds``, per call) the call is interrupted where it runs
  (an epoch deadline) and the instance replaced by a fresh one, initialized
  with the same config (a Wasm call is stopped, not unwound: no handler of the
  plugin runs). A trap (unreachable, out of bounds, out of memory) fails the call
  with ``PluginCrashed`` (``ResourceLimitExceeded`` at the memory limit) and the
  supervisor replaces the plugin, as with a worker that died.

The ABI is ``isolation._wasm_abi`` (docs/wasm-plugins.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from plugbay.api import CommandSpec, PluginContext
from plugbay.api._context import secret_not_granted, secret_without_value
from plugbay.api.errors import (
    PlugbayError,
    PluginCallError,
    PluginCrashed,
    PluginLoadError,
    ResourceLimitExceeded,
)
from plugbay.isolation._wasm_deadline import JobDeadlines
from plugbay.isolation._wasm_events import PluginEmits, event_request
from plugbay.isolation._wasm_memory import MEMORY_HINT, limit_words, memory_at_start
from plugbay.isolation._wasm_requests import (
    bounded_storage,
    over_host_call_rate,
    storage_request,
)
from plugbay.isolation._wasm_requests import fail as _fail
from plugbay.isolation._wasm_services import HostCall, service_request
from plugbay.isolation._wasm_start import start_traps
from plugbay.isolation._wasm_thread import Closed, InstanceThread
from plugbay.isolation.affinity import Follow
from plugbay.isolation.base import Backend, CallTimeout, EnvironmentPaths, PluginHandle
from plugbay.isolation.identity import deliver_log, judge_error
from plugbay.isolation.refusals import Refusals
from plugbay.model.sizes import size_text

if TYPE_CHECKING:
    from plugbay.api import Storage
    from plugbay.isolation._wasm_abi import WasmInstance, WasmProgram
    from plugbay.isolation._wasm_component import ComponentInstance
    from plugbay.isolation.policy import Placement
    from plugbay.model.manifest import PluginManifest
    from plugbay.monitor.bounds import Budget

__all__ = ["WasmBackend", "WasmHandle"]

log = logging.getLogger("plugbay.isolation.wasm")

#: (calling plugin, target ("service:NAME@RANGE" or a plugin id), command, params) -> value
HostCallHandler = HostCall
#: the host's plugin events (``runtime.plugin_events``), found when a module emits
EventEmitter = Callable[[], PluginEmits]
_PAGE = 65536
#: seconds an interrupted call may take to stop before its caller is answered anyway
_GRACE = 0.25


class _Abandoned(Exception):
    """A job's caller was answered before the job stopped (it is stuck in the host)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class WasmBackend(Backend):
    """Starts Wasm plugins (see the module docstring)."""

    name = "wasm"

    def __init__(
        self,
        host_call: HostCallHandler,
        emit: EventEmitter | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self._host_call = host_call
        self._emit = emit
        #: compiled modules, serialized (a restart loads them instead of compiling);
        #: PLUGBAY_WASM_CACHE puts it elsewhere (hosts on one machine may share one)
        shared = os.environ.get("PLUGBAY_WASM_CACHE")
        self.cache_dir = Path(shared) if shared else cache_dir
        self.handles: set[WasmHandle] = set()

    async def start(
        self,
        manifest: PluginManifest,
        placement: Placement | None = None,
        data_dir: Path | None = None,
        environment: EnvironmentPaths | None = None,
    ) -> WasmHandle:
        """Load (or compile) the plugin's module and check that it speaks the ABI;
        ``initialize`` instantiates it."""
        declared = manifest.wasm
        if manifest.runtime != "wasm" or declared is None:
            raise PluginLoadError(
                "is not a Wasm plugin",
                plugin=manifest.id,
                where=manifest.location,
                hint='a Wasm plugin\'s manifest says runtime = "wasm"',
            )
        try:
            from plugbay.isolation import _wasm_abi
        except ImportError:
            raise PluginLoadError(
                "is a Wasm plugin, and this host has no Wasm runtime installed",
                plugin=manifest.id,
                hint="install plugbay's wasm extra: pip install 'plugbay[wasm]'",
            ) from None
        root = manifest.root or (manifest.path.parent if manifest.path else None)
        path = (root / declared.module) if root is not None else Path(declared.module)
        if not path.is_file():
            raise PluginLoadError(
                f"its module {path} does not exist",
                plugin=manifest.id,
                where=manifest.location,
                hint=f"build it: plugbay build {root or '.'}",
            )
        try:
            program = await asyncio.to_thread(_wasm_abi.load_program, path, self.cache_dir)
            _wasm_abi.check_module(program)
        except _wasm_abi.ProtocolError as exc:
            raise PluginLoadError(
                f"its module {path.name} does not speak the plugbay Wasm ABI: {exc}",
                plugin=manifest.id,
                where=str(path),
                hint="build it with 'plugbay build' from a template ('plugbay new --lang c')",
            ) from None
        except Exception as exc:  # not a module wasmtime can compile
            raise PluginLoadError(
                f"its module {path.name} cannot be compiled: {str(exc).splitlines()[0]}",
                plugin=manifest.id,
                where=str(path),
                hint="rebuild it with 'plugbay build'",
            ) from None
        if data_dir is None:
            raise PluginLoadError("a Wasm plugin needs its data directory", plugin=manifest.id)
        handle = WasmHandle(manifest, program, placement, data_dir, self)
        self.handles.add(handle)
        return handle

    async def close(self) -> None:
        for handle in list(self.handles):
            handle.release()
        self.handles.clear()


class WasmHandle(PluginHandle):
    """One Wasm plugin instance on a thread of its own; see the module docstring."""

    isolated = True  # a trap ends it apart from the host: on_crash, restart, probation

    def __init__(
        self,
        manifest: PluginManifest,
        program: WasmProgram,
        placement: Placement | None,
        data_dir: Path,
        backend: WasmBackend,
    ) -> None:
        from plugbay.isolation._wasm_abi import InstanceLimits

        self.manifest = manifest
        self.commands: Mapping[str, CommandSpec] = manifest.wasm.specs()
        self.instance = None
        self.program = program
        self.placement = placement
        self._backend = backend
        limits = placement.limits if placement is not None else {}
        granted = placement.effective if placement is not None else ()
        paths = [(p.partition(":")[2], False) for p in granted if p.startswith("read:")]
        paths += [(p.partition(":")[2], True) for p in granted if p.startswith("write:")]
        memory = limits.get("memory")
        self.limits = InstanceLimits(
            memory_bytes=int(memory) if memory is not None else None,
            data_dir=data_dir,
            paths=tuple(paths),
        )
        cpu = limits.get("cpu-seconds")
        #: CPU bound of one call (``[resources] cpu-seconds``), None: only its deadline
        self.cpu_per_call = float(cpu) if cpu else None
        self.layers = self.limits.layers()
        self.budget: Budget | None = None
        self.issued: Callable[[str], bool] = lambda token: False
        #: refusals this handle made the module itself (a secret not granted)
        self._refusals = Refusals()
        self._thread = InstanceThread(f"plugbay-wasm-{manifest.id}", self._drop_instance)
        self.follow = Follow(self._thread.tid)
        self._lock = threading.Lock()
        self._inst: WasmInstance | ComponentInstance | None = None
        self._config = b"{}"
        self._storage: Storage | None = None
        self._context: PluginContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._running: dict[int, tuple[float, str]] = {}
        #: job → why it was interrupted ("timeout", "cpu", "cancelled"); a job abandoned
        #: by its caller keeps its entry until the instance thread comes to it
        self._why: dict[int, str] = {}
        self._deadlines = JobDeadlines(self._lock, self._running, self._why, program.interrupt)
        self._current: int | None = None
        #: the running job's CPU clock when it began (``time.thread_time``), and its timeout
        self._cpu_start = self._timeout = 0.0
        #: set when the running job is interrupted: wakes it from a sleep (``sleep``)
        self._wake = threading.Event()
        #: job → the future its caller awaits (once it stopped waiting in place)
        self._callers: dict[int, asyncio.Future[Any]] = {}
        #: bytes the running job's module said it was refused (the SDK's out_of_memory)
        self._refused: int | None = None
        #: the host request the running job waits on (cancelled when it is interrupted)
        self._waiting: concurrent.futures.Future[Any] | None = None
        self._dead: PlugbayError | None = None
        self._broken: str | None = None  # set on the instance thread when it trapped
        self._closing = False
        #: figures for usage(): CPU seconds of calls, calls, instances replaced
        self.cpu_seconds = 0.0
        self.calls = 0
        self.replaced = 0
        self.memory_bytes = 0

    # -- jobs on the instance thread ------------------------------------------------------

    async def _job(
        self, what: str, work: Callable[[], Any], timeout: float, cpu: float | None = None
    ) -> Any:
        """Run ``work`` on the instance thread, interrupted past ``timeout`` (or ``cpu``),
        or when the caller gives up; returns its value or raises what the host makes of
        a trap, an interruption or a broken protocol."""
        if self._dead is not None:
            raise self._dead
        loop = self._loop = asyncio.get_running_loop()
        token = next(self._ids)
        self._running[token] = (loop.time(), what)
        thread = self._thread
        if thread.slow or len(self._running) > 1:  # let the scheduler place it
            self.follow.release()
        elif not self._closing:  # a lone short call: on its caller's core (_wasm_thread)
            self.follow.call()
        timers = [loop.call_later(timeout, self._interrupt, token, "timeout")]
        if cpu is not None and cpu < timeout:
            timers.append(loop.call_later(cpu, self._check_cpu, token, cpu, timers))
        answered = False
        try:
            outcome, value = await thread.run(
                loop,
                lambda: self._run(token, work, timeout),
                partial(self._callers.__setitem__, token),
            )
            answered = True
        except asyncio.CancelledError:
            self._interrupt(token, "cancelled")
            raise
        except Closed:
            raise self._dead or PluginCrashed("was released", plugin=self.manifest.id) from None
        except _Abandoned as abandoned:  # still stuck in the host: its caller is answered
            outcome, value = "interrupted", abandoned.why
        finally:
            for timer in timers:
                timer.cancel()
            self._running.pop(token, None)
            self._callers.pop(token, None)
            if answered:  # a timer that fired as it was answered
                with self._lock:
                    self._why.pop(token, None)
        if outcome == "ok":
            return value
        raise self._failure(outcome, value, what)

    def _run(self, token: int, work: Callable[[], Any], timeout: float) -> tuple[str, Any]:
        """On the instance thread: one job, armed to be interrupted by its token."""
        from plugbay.isolation._wasm_abi import Interrupted, ProtocolError, Trapped

        with self._lock:
            if token in self._why:  # interrupted before it began (its caller may be gone)
                return "interrupted", self._why.pop(token)
            if self._broken is not None:
                return "broken", self._broken
            self._current, self._timeout = token, timeout
            self._wake.clear()
            self._refused = None
            if self._inst is not None:
                self._inst.arm()
            started = self._cpu_start = time.thread_time()
        try:
            return "ok", work()
        except Interrupted:
            with self._lock:
                why = self._why.get(token, "cancelled")
                self._current = None  # a second timer of this job must not stop its successor
            self._replace_instance()
            return "interrupted", why
        except Trapped as trap:
            self._broken = str(trap)
            if trap.refused is None:
                trap.refused = self._refused
            return "trapped", trap
        except ProtocolError as exc:
            self._broken = str(exc)
            return "protocol", exc
        finally:
            with self._lock:
                self._current = None
                self._why.pop(token, None)  # a timer that fired as it ended
            self.cpu_seconds += time.thread_time() - started
            # the store is this thread's: its memory is read here, now and then (usage())
            if self._inst is not None and (token & 15 == 1 or self._broken is not None):
                with contextlib.suppress(Exception):
                    self.memory_bytes = self._inst.memory_bytes()

    def _interrupt(self, token: int, why: str) -> None:
        """Stop job ``token`` where it runs (or before it starts); any thread. A job
        waiting on a host request stops waiting: the module is told, then interrupted;
        a sleeping one wakes. One the host cannot stop (a component's sleep, say) keeps
        its instance, but not its caller: past :data:`_GRACE` the caller is answered."""
        with self._lock:
            self._why.setdefault(token, why)
            if self._current == token:
                self.program.interrupt()
                self._wake.set()
                waiting = self._waiting
                if waiting is not None:
                    waiting.cancel()
        loop = self._loop
        if why != "cancelled" and loop is not None and token in self._running:
            loop.call_later(_GRACE, self._abandon, token, why)

    def _abandon(self, token: int, why: str) -> None:
        """On the loop: answer job ``token``'s caller now; the job still runs or waits
        its turn, and the instance thread drops it when it comes to it."""
        future = self._callers.get(token)
        if future is not None and not future.done():
            future.set_exception(_Abandoned(why))

    def _check_cpu(self, token: int, cpu: float, timers: list[asyncio.TimerHandle]) -> None:
        """On the loop: interrupt job ``token`` once its thread has spent ``cpu`` seconds
        of CPU time on it; a job that sleeps, waits on the host or waits its turn is not
        computing, so the check comes again when the rest could have been spent."""
        now = self._thread.cpu_seconds()
        with self._lock:
            running = self._current == token
            used = now - self._cpu_start if running and now is not None else None
        if running and (used is None or used >= cpu - 0.001):
            self._interrupt(token, "cpu")
            return
        left = cpu if used is None else cpu - used
        loop = self._loop
        if loop is not None and token in self._running:
            timers.append(loop.call_later(left, self._check_cpu, token, cpu, timers))

    def _replace_instance(self) -> None:
        """An interrupted instance stopped anywhere (inside malloc, say): a fresh one,
        initialized with the same config, takes its place (on the instance thread)."""
        self.replaced += 1
        try:
            self._new_instance()
        except Exception as exc:
            self._broken = f"its replacement instance failed to start: {exc}"

    def _drop_instance(self) -> None:
        """Close the instance's store (on the instance thread): its host functions hold
        this handle, a cycle through wasmtime that Python's collector cannot see, so a
        store only dropped would keep its memory reservation (GiBs of address space)."""
        inst, self._inst = self._inst, None
        if inst is not None:
            inst.close()

    def _new_instance(self) -> None:
        from plugbay.isolation._wasm_abi import instantiate

        self._drop_instance()
        inst = self._inst = instantiate(self.program, self.limits, self, self._output)
        try:
            inst.arm()
            reply = inst.hook("init", self._config)
        except BaseException:  # a start that traps: its store freed now, not kept for ever
            self._drop_instance()
            raise
        if "error" in reply:
            self._drop_instance()
            raise self._error(reply["error"])

    def _failure(self, outcome: str, value: Any, what: str) -> BaseException:
        plugin = self.manifest.id
        if outcome == "interrupted":
            if value == "timeout":
                self._report({"kind": "timeout", "operation": what, "detail": "interrupted"})
                return CallTimeout()
            if value == "cpu":
                return self._limit(
                    "cpu_seconds",
                    f"'{what}' used up its CPU time of {self.cpu_per_call:g} s per call and was "
                    "interrupted; its instance was replaced",
                    replaced=False,
                )
            return asyncio.CancelledError()
        if outcome == "error":
            return value if isinstance(value, BaseException) else PluginCallError(str(value))
        if outcome == "broken" and self._dead is not None:
            return self._dead
        if outcome == "trapped" and (memory_error := self._memory_error(value, what)):
            error: PlugbayError = memory_error
        elif outcome in ("trapped", "broken"):
            error = PluginCrashed(
                f"its Wasm instance trapped in '{what}': {value}",
                plugin=plugin,
                hint="a trap is a bug in the module (or an attack); the instance is replaced",
                details={"trap": str(value)},
            )
        else:
            self._report({"kind": "killed", "layer": "protocol", "detail": str(value)})
            error = PluginCrashed(
                f"its Wasm module broke the plugbay ABI in '{what}': {value}",
                plugin=plugin,
                hint="the module must speak the plugbay Wasm ABI (docs/wasm-plugins.md)",
                details={"layer": "protocol"},
            )
        self._crashed(error)
        return error

    def _memory_error(self, trap: Any, what: str) -> ResourceLimitExceeded | None:
        """A trap that is its memory running out: the module said it was refused memory
        (the SDK does, before it traps), or, the store refusing to grow it past its limit
        (memory.grow returns -1), it trapped within one grow step (an eighth) of it."""
        memory, used, refused = self.limits.memory_bytes, trap.memory_bytes, trap.refused
        cap = limit_words(memory, self.placement)
        if refused is not None:
            message = (
                f"its instance ran out of memory in '{what}': {refused:,} more bytes were "
                f"refused with {size_text(used)} of linear memory in use, under {cap}, and "
                f"it trapped: {trap}"
            )
        elif memory and used + max(2 * _PAGE, memory // 8) > memory:
            message = (
                f"its instance reached {cap}, with {size_text(used)} of linear memory in "
                f"use, and trapped in '{what}': {trap}"
            )
        else:
            return None
        return self._limit("memory", message, replaced=True, hint=MEMORY_HINT)

    def _limit(
        self, limit: str, message: str, *, replaced: bool, hint: str | None = None
    ) -> ResourceLimitExceeded:
        self._report({"kind": "limit", "limit": limit, "detail": message})
        return ResourceLimitExceeded(
            message,
            plugin=self.manifest.id,
            hint=hint
            or f"raise resources.{limit.replace('_', '-')} in the manifest (the host's "
            "policy caps it)",
            details={"limit": limit, "replaced": replaced},
        )

    def _crashed(self, error: PlugbayError) -> None:
        if self._dead is not None:
            return
        self._dead = error
        if self.on_crash is not None and not self._closing:
            self.on_crash(error)

    def _report(self, event: dict[str, Any]) -> None:
        event.setdefault("source", "host")
        if self.on_security is not None:
            try:
                self.on_security(event)
            except Exception:  # reporting must never take the handle down
                log.exception("security event handler failed")

    def _error(self, data: Any) -> PlugbayError:
        """The module's error reply, as the host presents it (its own error, or a host
        denial it passed on: a denial counts only when the host issued it to this plugin)."""
        if not isinstance(data, dict):
            data = {"message": repr(data)[:2048]}
        data = {"type": "PluginCallError", **data}
        data.setdefault("message", "the command failed")
        return judge_error(
            data,
            self.manifest.id,
            granted=self.placement.effective if self.placement is not None else (),
            sandboxed=True,
            issued=lambda token: (
                self._refusals.redeem(self.manifest.id, token) or self.issued(token)
            ),
        )

    # -- the contract ---------------------------------------------------------------------

    async def initialize(self, context: PluginContext, timeout: float) -> None:
        self._context, self._storage = context, bounded_storage(context, self.placement)
        self._config = msgspec.json.encode(context.config.to_dict())
        # a trap as it starts: plugin_init_failed; initial memory above its limit: the limit
        with start_traps(self.manifest), memory_at_start(self.manifest, self.placement):
            await self._job("initialize", self._new_instance, timeout)

    async def call(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any:
        command = spec.name.encode()
        payload = msgspec.json.encode(params)
        self.calls += 1
        reply = await self._job(
            spec.name, lambda: self._call(command, payload), timeout, self.cpu_per_call
        )
        return self._value(reply, spec.name)

    def _call(self, command: bytes, payload: bytes) -> Any:
        inst = self._inst
        assert inst is not None, "initialize first"
        return inst.call(command, payload)

    def _value(self, reply: dict[str, Any], what: str) -> Any:
        if "too_large" in reply:
            self._report(
                {"kind": "limit", "limit": "result_bytes", "detail": f"{reply['too_large']} bytes"}
            )
            raise PluginCallError(
                f"'{what}' returned {reply['too_large']:,} bytes, over the host's bound of "
                f"{self.limits.max_reply:,}; the result was dropped unread",
                plugin=self.manifest.id,
                hint="return less (page through it), or keep it in the plugin's storage",
                details={"limit": "result_bytes"},
            )
        if "error" in reply:
            raise self._error(reply["error"])
        return reply.get("ok")

    async def cleanup(self, timeout: float) -> None:
        self._closing = True
        try:
            if self._dead is None and self._inst is not None:
                reply = await self._job("cleanup", lambda: self._hook("cleanup"), timeout)
                if "error" in reply:
                    raise self._error(reply["error"])
        finally:
            if self._context is not None:
                await self._context.close(0.1)
            self.follow.release()  # while its thread is alive: its id is not reused yet
            self._thread.close()

    def _hook(self, name: str, payload: bytes | None = None) -> Any:
        inst = self._inst
        if inst is None:
            return {"none": True}
        return inst.hook(name, payload)

    def release(self) -> None:
        self._closing = True
        with self._lock:
            if self._current is not None:
                self._why.setdefault(self._current, "released")
                self.program.interrupt()
        self.follow.release()
        self._thread.close()
        self._backend.handles.discard(self)

    async def export_state(self, timeout: float) -> tuple[bool, Any]:
        reply = await self._job("export_state", lambda: self._hook("export_state"), timeout)
        if "none" in reply:
            return False, None
        return True, self._value(reply, "export_state")

    async def import_state(self, state: Any, timeout: float) -> bool:
        from plugbay.isolation import handover

        data = msgspec.json.encode(handover.plain_state(state))
        reply = await self._job("import_state", lambda: self._hook("import_state", data), timeout)
        if "none" in reply:
            return False
        self._value(reply, "import_state")
        return True

    async def profile(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """One call under cProfile on the instance thread: the host's side of the call
        (its imports, the copy in and out) and the time inside the module, as one entry."""
        import cProfile  # here: a profile is rare; the host imports this module at start
        import pstats

        command, payload = spec.name.encode(), msgspec.json.encode(params)
        profiler = cProfile.Profile()

        def profiled() -> Any:
            return profiler.runcall(self._call, command, payload)

        reply = await self._job(spec.name, profiled, timeout, self.cpu_per_call)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        return {"value": self._value(reply, spec.name), "report": out.getvalue()}

    def bind(self, budget: Budget | None, issued: Callable[[str], bool]) -> None:
        self.budget = budget
        self.issued = issued
        if budget is not None:
            self.limits = type(self.limits)(
                self.limits.memory_bytes,
                self.limits.data_dir,
                self.limits.paths,
                max_reply=budget.bounds.frame_bytes,
            )

    # -- what the monitor reads -------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        """The instance's linear memory (its own memory: what it can grow), CPU seconds of
        its calls, and how often it was replaced."""
        return {
            "pid": os.getpid(),  # it runs in the host's process, on a thread of its own
            "rss_bytes": max(self.memory_bytes, _PAGE),
            "linear_memory_bytes": self.memory_bytes,
            "memory_limit": self.limits.memory_bytes,
            "cpu_seconds": round(self.cpu_seconds, 6),
            "threads": 1,
            "open_files": 0,
            "calls": self.calls,
            "instances_replaced": self.replaced,
            "module": self.program.source,
            "sandboxed": True,
        }

    def running(self) -> list[tuple[float, str]]:
        return list(self._running.values())

    def alive(self) -> str | None:
        return None if self._dead is None else str(self._dead.message)

    def dump_stacks(self, *, tasks: bool = True) -> str:
        names = ", ".join(command for _, command in self.running()) or "nothing"
        return f"(Wasm instance of {self.manifest.id}: running {names}; no stacks in a module)"

    # -- the module's requests (its imports), on the instance thread ---------------------------

    def _output(self, stream: str, data: bytes) -> None:
        """What the module writes to stdout (its log, at info) or stderr (at warning), as a
        worker's streams are logged."""
        text = bytes(data).decode("utf-8", "replace").rstrip("\n")
        if text:
            self.log(
                {
                    "logger": f"plugbay.plugin.{self.manifest.id}.{stream}",
                    "level": 30 if stream == "stderr" else 20,
                    "message": text,
                    "fields": {"stream": stream},
                }
            )

    def sleep(self, seconds: float) -> None:
        """A core module's sleep (WASI ``poll_oneoff`` on a clock), on the instance
        thread: it ends early when the call is interrupted, so a sleeping call is stopped
        at its deadline like a computing one."""
        self._wake.wait(max(0.0, seconds))

    def log(self, request: Any) -> None:
        """``plugbay.log``: into this plugin's log, whatever logger the record names."""
        if not isinstance(request, dict):
            request = {"message": str(request)}
        fields = request.get("fields")
        if isinstance(fields, dict) and isinstance(fields.get("out_of_memory"), int):
            self._refused = fields["out_of_memory"]  # the SDK's last word before it traps
        loop = self._loop
        args = (
            str(request.get("logger") or f"plugbay.plugin.{self.manifest.id}"),
            request.get("level", 20),
            str(request.get("message", "")),
            request.get("fields") if isinstance(request.get("fields"), dict) else None,
        )
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._deliver, *args)

    def _deliver(self, logger: str, level: Any, message: str, fields: Any) -> None:
        deliver_log(
            logger, level, message, fields,
            plugin_id=self.manifest.id, pid=os.getpid(), budget=self.budget,
        )  # fmt: skip

    def request(self, kind: str, request: Any) -> Any:
        """``plugbay.storage``, ``.event``, ``.service`` and ``.secret``: answered for this
        plugin, bounded by its host-call budget."""
        if not isinstance(request, dict):
            return _fail("a host request is a JSON object")
        budget = self.budget
        if budget is not None and not budget.host_calls.allow():
            budget.drop("host_call_rate")
            refused = over_host_call_rate(self.manifest.id, budget.bounds.host_calls_per_second)
            return {"error": self._refusals.issue(self.manifest.id, refused).to_dict()}
        if kind == "storage":
            return storage_request(self._storage, request)
        if kind == "secret":
            return self._secret(request)
        if kind == "event":
            return self._event(request)
        return self._service(request)

    def _secret(self, request: dict[str, Any]) -> Any:
        name = str(request.get("name", ""))
        secrets = self.placement.secrets if self.placement is not None else {}
        if name in secrets:
            return {"ok": secrets[name]}
        if self.placement is not None and name in self.placement.unset_secrets():
            return {"error": secret_without_value(name, self.manifest.id).to_dict()}
        # an inline plugin's or a worker's words; the host's layer: stamped, passed on
        error = secret_not_granted(name[:64], self.manifest.id, "broker")  # it is the host's
        said = error.details  # the security event in the error's words
        self._report_threadsafe(
            {
                "kind": "denied",
                "operation": said["operation"],
                "permission": said["permission"],
                "layer": "secrets",
            }
        )
        return {"error": self._refusals.issue(self.manifest.id, error).to_dict()}

    def _event(self, request: dict[str, Any]) -> Any:
        emit, due = self._backend._emit, self._deadlines.of(self._current, self._timeout)
        return event_request(self.manifest.id, request, emit, self._loop, self._refusals, due)

    def _service(self, request: dict[str, Any]) -> Any:
        host_call, due = self._backend._host_call, self._deadlines.of(self._current, self._timeout)
        return service_request(self.manifest.id, request, host_call, self._loop, due, self._wait)

    def _wait(self, future: concurrent.futures.Future[Any] | None) -> None:
        """The host request the running job waits on (None: it waits no more); cancelled
        at once when the job was interrupted before it began waiting."""
        with self._lock:
            if future is not None and self._current is not None and self._current in self._why:
                future.cancel()
            self._waiting = future

    def _report_threadsafe(self, event: dict[str, Any]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._report, event)
