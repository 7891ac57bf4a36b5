"""The inline backend: the plugin runs in the host's own process and event loop.

It is the fastest backend and has no protection: only for trusted plugins
(policy gives it to bundled ``core/`` plugins and to plugins an operator
marks trusted). A ``def`` body runs on the loop unless the command is
``blocking=True``; lifecycle methods written as ``def`` run in a daemon thread
so that a hang there is bounded by its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dis
import inspect
import threading
import traceback
import types
from collections.abc import Callable, Coroutine, Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from plugbay.api import Command, CommandSpec, Plugin, PluginContext, PluginDependency
from plugbay.api.errors import PlugbayError, PluginInitError
from plugbay.isolation.base import Backend, EnvironmentPaths, PluginHandle, deadline
from plugbay.isolation.loading import (
    LoadedCode,
    import_plugin,
    plugin_frame,
    raised_at,
    unload_code,
)
from plugbay.model.manifest import PluginManifest

if TYPE_CHECKING:
    from plugbay.isolation.policy import Placement

__all__ = [
    "InlineBackend",
    "InlineHandle",
    "lifecycle",
    "new_instance",
    "run_in_daemon_thread",
    "settle",
]

T = TypeVar("T")


class InlineBackend(Backend):
    name = "inline"

    async def start(
        self,
        manifest: PluginManifest,
        placement: Placement | None = None,
        data_dir: Path | None = None,
        environment: EnvironmentPaths | None = None,
    ) -> InlineHandle:
        """Import the plugin into a fresh module namespace (no sandbox: ``placement``
        and ``data_dir`` do not change how it runs). A constructor that raises is
        ``plugin_init_failed`` in the words a worker's is (``isolation.worker``'s load)."""
        try:
            code = import_plugin(manifest)
        except PlugbayError as exc:
            # the module that raised as it was imported is out of sys.modules; its frame,
            # the error's hidden context, would keep its globals alive on the plugin's
            # record (the traceback is in details; the PDK's check reads the context)
            if exc.__suppress_context__:
                exc.__context__ = None
            raise
        try:
            return InlineHandle(code)
        except (Exception, SystemExit) as exc:  # sys.exit() in a plugin is its own failure
            failure = PluginInitError(
                f"constructing {code.cls.__name__} raised {type(exc).__name__}: {exc}",
                plugin=manifest.id,
                where=plugin_frame(exc, manifest) or manifest.location,
                hint=f"see the traceback with 'plugbay info {manifest.id} --traceback'",
                details={
                    "exception": type(exc).__name__,
                    "raised_at": raised_at(exc, manifest),
                    "traceback": "".join(traceback.format_exception(exc)),
                },
            )
        # As release() does: nothing of this attempt stays in sys.modules, so a fixed
        # version loaded next imports fresh code. The error is kept on the plugin's record
        # with its traceback (this frame): raised outside the except and without its class
        # here, it holds nothing of the plugin's code (its traceback is in details).
        namespace = code.namespace
        del code
        if namespace is not None:
            unload_code(namespace)
        raise failure


class InlineHandle(PluginHandle):
    """A plugin in the host's process: it shares the host's pid, figures and fate, so
    it keeps the contract's defaults for ``usage``, ``alive``, ``dump_stacks``, state
    handover (on its instance) and ``profile`` (in this process)."""

    __slots__ = (
        "_code",
        "_direct",
        "_plain",
        "_running",
        "_straight",
        "commands",
        "instance",
        "manifest",
    )

    def __init__(self, code: LoadedCode) -> None:
        self._code = code
        self.manifest = code.manifest
        self.commands: Mapping[str, CommandSpec] = code.commands
        instance = new_instance(code)
        self.instance: Plugin | None = instance
        # A plugin that overrides execute() gets every call through it, as the spec says.
        self._direct = type(instance).execute is Plugin.execute
        # Sorted once, by how a call runs: ``def`` commands run on the loop, and ``async
        # def`` ones that cannot suspend (see :func:`straight`); none when execute() is
        # the plugin's own.
        specs = list(self.commands.values()) if self._direct else []
        self._plain = frozenset(s for s in specs if not s.is_async and not s.blocking)
        self._straight = frozenset(s for s in specs if s.is_async and straight(s.func))
        #: calls that suspended (or run in a thread): id → (loop-time start, command), so the
        #: monitor finds a hung one; a call that never suspends is never in here
        self._running: dict[int, tuple[float, str]] = {}

    async def initialize(self, context: PluginContext, timeout: float) -> None:
        assert self.instance is not None
        self.instance.context = context
        await lifecycle(self.instance.initialize, timeout, context)

    def call(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> Coroutine[Any, Any, Any]:
        """The call, to be awaited; one way per kind of command, chosen here.

        A straight ``async def`` command (no ``await`` in its body: it cannot suspend, so
        no timeout can fire in it) is its own coroutine, handed back as it is. A ``def``
        command on the loop gets the smallest coroutine that calls it (:func:`_run_def`:
        no handle, no checks, a three-slot frame). Anything else (a command that can
        suspend, a blocking one, a plugin's own ``execute``) goes the long way, bounded
        by its timeout."""
        if spec in self._straight:
            return spec.func(self.instance, **params)  # type: ignore[no-any-return]
        if spec in self._plain:
            return _run_def(spec.func, self.instance, params)
        return self._call(spec, params, timeout)

    async def _call(self, spec: CommandSpec, params: dict[str, Any], timeout: float) -> Any:
        instance = self.instance
        if not self._direct:
            token = self._started(spec.name)
            try:
                async with deadline(timeout):
                    return await instance.execute(Command(spec.name, params))  # type: ignore[union-attr]
            finally:
                del self._running[token]
        if spec.is_async:
            # Run the first step now, as `await` would. A timeout can only fire where the
            # command suspends, so the timer is armed only if it does: a command that
            # finishes without suspending costs no timer at all.
            coro = spec.func(instance, **params)
            try:
                signal = coro.send(None)
            except StopIteration as done:
                return done.value
            token = self._started(spec.name)
            try:
                async with deadline(timeout):
                    return await _Resume(coro, signal)
            finally:
                del self._running[token]
        if spec.blocking:
            token = self._started(spec.name)
            try:
                async with deadline(timeout):
                    return await run_in_daemon_thread(lambda: spec.func(instance, **params))
            finally:
                del self._running[token]
        return spec.func(instance, **params)

    def _started(self, command: str) -> int:
        token = id(asyncio.current_task())
        while token in self._running:  # (the same task calling twice at once: never, but safe)
            token += 1
        self._running[token] = (asyncio.get_running_loop().time(), command)
        return token

    def running(self) -> list[tuple[float, str]]:
        """(loop-time start, command) of each call in flight that suspended, for the monitor."""
        return list(self._running.values())

    async def cleanup(self, timeout: float) -> None:
        if self.instance is not None:
            start = asyncio.get_running_loop().time()
            try:
                await lifecycle(self.instance.cleanup, timeout)
            finally:
                context = getattr(self.instance, "context", None)
                if isinstance(context, PluginContext):  # its tasks and store, within the bound
                    left = timeout - (asyncio.get_running_loop().time() - start)
                    await context.close(max(0.0, left))

    def release(self) -> None:
        self.instance = None
        if self._code.namespace is not None:
            unload_code(self._code.namespace)


async def _run_def(
    func: Callable[..., Any], instance: Plugin | None, params: dict[str, Any]
) -> Any:
    """A ``def`` command run on the loop (it cannot be interrupted there: the timeout is
    for what suspends; a ``def`` that may block is ``blocking=True``, in a thread)."""
    return func(instance, **params)


class _Resume:
    """Await the rest of a coroutine whose first step already ran (PEP 380's ``yield from``,
    spelled out, because the first value it yielded must be handed to the task first)."""

    __slots__ = ("coro", "signal")

    def __init__(self, coro: Coroutine[Any, Any, Any], signal: Any) -> None:
        self.coro, self.signal = coro, signal

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, signal = self.coro, self.signal
        while True:
            try:
                received = yield signal
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation (the timeout) goes to the command
                try:
                    signal = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    signal = coro.send(received)
                except StopIteration as done:
                    return done.value


#: the opcodes of a point where a coroutine may suspend (await, async for, async with)
_SUSPENDING: Final = frozenset(
    {"SEND", "YIELD_VALUE", "YIELD_FROM", "GET_AWAITABLE", "GET_AITER", "GET_ANEXT"}
    | {"BEFORE_ASYNC_WITH", "END_ASYNC_FOR", "ASYNC_GEN_WRAP"}
)


def straight(func: Callable[..., Any]) -> bool:
    """Whether ``func`` is an ``async def`` whose body cannot suspend: no ``await``,
    ``async for`` or ``async with`` anywhere in it (an async comprehension is awaited
    in the body too). Such a coroutine runs to its end in the step that starts it, so
    a timeout cannot fire in it and none is armed. Anything else (a wrapper, a callable
    object, a plain function returning an awaitable) is not straight."""
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType) or not code.co_flags & inspect.CO_COROUTINE:
        return False
    return not any(i.opname in _SUSPENDING for i in dis.get_instructions(code))


def new_instance(code: LoadedCode) -> Plugin:
    """Create the plugin object and give it its identity from the manifest (any backend)."""
    instance = code.cls()
    m = code.manifest
    instance.id = m.id
    instance.version = str(m.version)
    instance.capabilities = m.capabilities
    instance.dependencies = tuple(
        [PluginDependency(d, str(r)) for d, r in m.dependencies.items()]
        + [PluginDependency(d, str(r), optional=True) for d, r in m.optional_dependencies.items()]
    )
    if "features" not in vars(instance) and not hasattr(type(instance), "features"):
        instance.__dict__.setdefault("features", [])
    if m.type == "integration" and not hasattr(instance, "endpoints"):
        instance.__dict__["endpoints"] = []
    return instance


async def lifecycle(method: Callable[..., Any], timeout: float, *args: Any) -> None:
    async with deadline(timeout):
        if inspect.iscoroutinefunction(method):
            await method(*args)
        else:
            result = await run_in_daemon_thread(lambda: method(*args))
            if inspect.isawaitable(result):
                await result


def settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """On the loop: a thread's answer into ``future`` (its value, or what it raised),
    unless its caller gave up meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def run_in_daemon_thread(fn: Callable[[], T], name: str = "plugbay-blocking") -> asyncio.Future[T]:
    """Run ``fn`` in a daemon thread called ``name``. Unlike ``asyncio.to_thread``, a
    thread that never returns cannot keep the host from exiting."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            value: Any = fn()
            ok = True
        except BaseException as exc:
            value, ok = exc, False
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(settle, future, ok, value)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
