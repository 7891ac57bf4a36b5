"""The worker runtime: what runs inside a sandboxed plugin's process.

It speaks frames (``isolation.frames``) on one socket to the host: it loads the
plugin from its manifest, checks every call against the command's annotations
with the same :class:`CommandSpec` the inline backend uses (the host cannot:
it never imports a sandboxed plugin's code), runs calls concurrently, and sends
back plain data. Services the plugin requires are reached through the host
(``HostCall``), so they are checked and counted like any other call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgspec

from plugbay.api import (
    Command,
    CommandSpec,
    Environment,
    Events,
    Plugin,
    PluginConfig,
    PluginContext,
    Secrets,
)
from plugbay.api._events import (
    EVENT_PREFIX,
    MAX_PAYLOAD,
    call_handler,
    event_handlers,
    run_handler,
)
from plugbay.api.errors import (
    ParameterError,
    PlugbayError,
    PluginCallError,
    ServiceError,
    error_from_dict,
)
from plugbay.isolation import _exit_words, _memory_mark, _start_memory, frames, handover, loops
from plugbay.isolation._authors_line import at_the_authors_line
from plugbay.isolation._emit import EVENTS_TARGET, emit_encoder, near_the_bound
from plugbay.isolation._log_record import record_fields, record_message
from plugbay.isolation.guard import Guard, classify, file_permissions_hint
from plugbay.isolation.inline import lifecycle, new_instance, run_in_daemon_thread
from plugbay.isolation.loading import import_plugin, plugin_frame, raised_at
from plugbay.isolation.offered_services import (
    AtLoad,
    refused_at_load,
    reported,
    told_the_host,
)
from plugbay.model._events import EventListen
from plugbay.model.manifest import ManifestOrigin, PluginManifest, load_manifest
from plugbay.model.versions import Range, Version
from plugbay.monitor.bounds import Bounds
from plugbay.monitor.library_errors import library_details
from plugbay.monitor.metrics import PluginMetrics

__all__ = ["Worker", "main"]

#: results sent as they are (exactly these types: an enum or bytes goes through msgspec)
_PLAIN: frozenset[type] = frozenset({int, str, float, bool, type(None)})
_Call, _Reply = frames.Call, frames.Reply
#: lifecycle steps are bounded by the host, which kills the worker when they overrun
_NO_LIMIT = 10.0**9
#: background tasks get this long to stop once cancelled at cleanup (the host's bound is
#: the cleanup timeout; a task that outlives this is reported and left to the exit)
_TASKS_STOP = 1.0


class _HostServices:
    """``context.services`` inside a worker: every service is a call through the host."""

    def __init__(self, worker: Worker, offered: dict[str, list[str]] | None) -> None:
        self._worker = worker
        #: what the host offered at load (``isolation.offered_services``), until the
        #: plugin is initialized (None: not told, or loaded: a call's host call says)
        self._offered = AtLoad(offered) if offered is not None else None
        #: the broker's refusals it made at load, told the host as such if let propagate
        self.refused: list[PlugbayError] = []

    def loaded(self) -> None:
        """Services come and go once plugins serve: from now on the host call says."""
        self._offered = None

    def provide(self, name: str, service: object, version: str = "1.0.0") -> None:
        raise ServiceError(
            f"a sandboxed plugin cannot provide the in-process object service '{name}'",
            hint="declare it under [services] provides: the plugin's commands are the service",
        )

    def require(self, name: str, range: str = "*", kind: type[Any] | None = None) -> Any:
        if self._offered is not None:  # at load, in an inline plugin's words
            plugin = self._worker.manifest.id if self._worker.manifest else None
            refused = refused_at_load(plugin or "", name, Range.parse(range), self._offered)
            if refused is not None:
                event = reported(refused)
                if event is not None:  # what the broker records of an inline plugin
                    self._worker.report(event)
                    self.refused.append(refused)
                raise refused
        return _RemoteService(self._worker, name, range)

    def available(self) -> dict[str, str]:
        return {}


class _RemoteService:
    __plugbay_proxy__ = True

    def __init__(self, worker: Worker, name: str, wanted: str) -> None:
        self._worker, self._name, self._range = worker, name, wanted

    def __getattr__(self, command: str) -> Any:
        if command.startswith("__"):
            raise AttributeError(command)

        async def call(**params: Any) -> Any:
            return await self._worker.host_call(
                f"service:{self._name}@{self._range}", command, params
            )

        return call


def _manifest_of(message: frames.Load) -> PluginManifest:
    """The plugin's manifest as the host checked it (``Load.manifest``), else read from
    its file: parsing and checking it again here would copy every page those steps touch."""
    given = message.manifest
    origin = cast(ManifestOrigin, message.origin)
    if given is None:
        manifest = load_manifest(Path(message.manifest_path))
        if manifest.origin != origin:  # an installed package: imported by name
            manifest = dataclasses.replace(manifest, origin=origin)
        return manifest
    return PluginManifest(
        id=given.id,
        version=Version.parse(given.version),
        type=cast(Any, given.type),  # one of the four: the host checked it
        entry=given.entry,
        listens={name: EventListen(name) for name in given.listens},
        path=Path(given.path) if given.path is not None else None,
        root=Path(given.root) if given.root is not None else None,
        origin=origin,
        distribution=given.distribution,
    )


def _lean_records() -> None:
    """A worker's record reaches the host as its level, logger, message and fields; where
    in the code it was made, its thread and its process are never sent (the host names
    the worker's pid). The logging module's own switches (its documented optimisations)
    skip looking them up: the caller's frame walk above all."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


#: the log bounds a worker applies when the host sent none (a backend without a manager)
_DEFAULT_BOUNDS = Bounds()


class _LogForwarder(logging.Handler):
    """Sends records to the host, rate-limited here so a flood never fills the channel.

    What it drops is counted, and the count goes to the host with the plugin's figures at
    the next heartbeat, or in the worker's goodbye as the plugin is cleaned up
    (``Worker._send_figures``: ``logs_dropped`` of ``frames.Metrics``), where
    it joins the plugin's ``log_rate`` drops: the records lost after the flood's last kept
    one are counted too, and no notice of its own competes with the records for the rate."""

    def __init__(self, worker: Worker, rate: float, burst: float) -> None:
        from plugbay.monitor.logs import RateLimiter

        super().__init__(logging.DEBUG)
        self.worker = worker
        self.rate = rate
        self.limit = RateLimiter(rate, burst)
        self.dropped = 0

    def take_dropped(self) -> int:
        """The records dropped since the last call (from any thread)."""
        with self.lock:  # type: ignore[union-attr]
            lost, self.dropped = self.dropped, 0
        return lost

    def emit(self, record: logging.LogRecord) -> None:
        if not self.limit.allow():
            self.dropped += 1
            return
        with contextlib.suppress(Exception):
            message, kept = record_message(record), record_fields(record)
            self.worker.send(frames.Log(record.levelno, record.name, message, kept))


class Worker:
    def __init__(self, layers: list[dict[str, Any]] | None = None) -> None:
        self.layers = layers or []
        self.guard: Guard | None = None
        self.channel: frames.Channel | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.plugin: Plugin | None = None
        #: the loaded plugin's manifest: where its own code is, to name the line it raised at
        self.manifest: PluginManifest | None = None
        self.specs: dict[str, CommandSpec] = {}
        #: the calls answered in the read that brought them (``answer``), each by what makes
        #: its answer: a plain ``def`` command of a plugin that keeps ``Plugin.execute``
        #: (``_run_now``), a plain ``def`` event handler (``_handle_now``)
        self.inline: dict[str, Callable[[frames.Call], Any]] = {}
        self.direct = True
        self.context: PluginContext | None = None
        #: sends the plugin's log records to the host (made as the plugin loads)
        self.forwarder: _LogForwarder | None = None
        self.loop = asyncio.get_running_loop()
        self.calls: dict[int, asyncio.Task[None]] = {}
        self.host_calls: dict[int, asyncio.Future[Any]] = {}
        self._next_host_call = 0
        #: the channel's socket (a store the host keeps reads its answers from it)
        self.fd: int | None = None
        self._limits_told: dict[str, float] = {}
        #: a background task ignored its cancellation: exit without waiting for it
        self.stuck = False
        #: what each message from the host (but a call) asks of the worker, by its type
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            frames.Load: self.load,
            frames.Init: self._on_init,
            frames.Cancel: self._on_cancel,
            frames.Cleanup: self._on_cleanup,
            frames.Ping: self._on_ping,
            frames.Profile: self._on_profile,
            frames.Sample: self._on_sample,
            frames.ExportState: self._on_export_state,
            frames.Describe: self._on_describe,
            frames.ChangeConfig: self._on_change_config,
            frames.ImportState: self._on_import_state,
            frames.HostReply: self._on_host_reply,
        }

    def send(self, message: frames.Message) -> None:
        if self.channel is not None:
            self.channel.send(message)

    def closed(self, reason: str | None, protocol_error: bool) -> None:
        if protocol_error:
            print(f"plugbay worker: {reason}", file=sys.stderr)
        if not self.done.done():
            self.done.set_result(None)

    async def host_call(self, plugin: str, command: str, params: dict[str, Any]) -> Any:
        call_id = self._host_call_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.host_calls[call_id] = future
        self.send(frames.HostCall(call_id, plugin, command, params))
        try:
            return await future
        finally:
            self.host_calls.pop(call_id, None)

    def on_message(self, message: frames.Message) -> None:
        """Dispatch one message as it is parsed: def commands are answered right here."""
        if type(message) is _Call:  # among other frames (a lone one: ``answer``)
            run = self.inline.get(message.command)
            if run is not None:
                self.answer_now(message, run)
            else:
                self._spawn(message.id, self.call(message))
            return
        handler = self._handlers.get(type(message))
        if handler is None:
            raise frames.FrameError(f"unexpected {type(message).__name__} from the host")
        handler(message)

    # ------------------------------------------------------------------ the host's other requests

    def _on_init(self, message: frames.Init) -> None:
        self._spawn(message.id, self.initialize(), "initialize")

    def _on_cancel(self, message: frames.Cancel) -> None:
        running = self.calls.get(message.id)
        if running is not None:
            # one loop step later: a call and its cancel read at once (a busy worker, a
            # relayed channel) would otherwise cancel a task before its command started,
            # and the command would never see its CancelledError
            asyncio.get_running_loop().call_soon(running.cancel)

    def _on_cleanup(self, message: frames.Cleanup) -> None:
        task = asyncio.ensure_future(self._finish(message.id))
        task.add_done_callback(lambda _t: None)

    def _on_ping(self, message: frames.Ping) -> None:
        """Liveness, and the plugin's own figures (:meth:`_send_figures`)."""
        self.send(frames.Pong(message.id))
        self._send_figures()

    def _send_figures(self) -> None:
        """The plugin's own metrics when they changed since they were last sent, with the
        log records the rate limit dropped meanwhile: at each heartbeat, and a last time
        as the plugin is cleaned up (an unload, a reload), ahead of the cleanup's answer,
        so what was dropped or counted after the last heartbeat is not lost with it."""
        metrics = self.context.metrics if self.context is not None else None
        lost = self.forwarder.take_dropped() if self.forwarder is not None else 0
        if isinstance(metrics, PluginMetrics) and (metrics.dirty or lost):
            data = metrics.export_custom()
            if lost:
                data["logs_dropped"] = lost
            self.send(frames.Metrics(data))

    def _on_profile(self, message: frames.Profile) -> None:
        from plugbay.isolation.profiling import profiled

        call = frames.Call(message.id, message.command, message.params, message.strict)
        self._spawn(message.id, profiled(self.call(call)))

    def _on_sample(self, message: frames.Sample) -> None:
        """Sample this worker's own stacks while it serves (``plugbay profile --seconds``)."""
        from plugbay.isolation.sampling import sampled

        self._spawn(message.id, sampled(message.seconds, message.interval), "sampling")

    def _on_describe(self, message: frames.Describe) -> None:
        self._spawn(message.id, self._schemas(), "describing its commands")

    async def _schemas(self) -> dict[str, Any]:
        return {name: spec.schema() for name, spec in self.specs.items()}

    def _on_export_state(self, message: frames.ExportState) -> None:
        self._spawn(message.id, self.export_state())

    def _on_change_config(self, message: frames.ChangeConfig) -> None:
        from plugbay.isolation.config_change import change_config

        assert self.plugin is not None
        self._spawn(message.id, change_config(self.plugin, message.config), "on_config_change")

    def _on_import_state(self, message: frames.ImportState) -> None:
        self._spawn(message.id, self.import_state(message.state))

    def _on_host_reply(self, message: frames.HostReply) -> None:
        """The answer to one of the plugin's calls out to the host."""
        future = self.host_calls.get(message.id)
        if future is not None and not future.done():
            if message.error is not None:
                future.set_exception(error_from_dict(message.error))
            else:
                future.set_result(message.value)

    def _spawn(self, request: int, work: Any, doing: str = "the call") -> None:
        running = asyncio.ensure_future(self.respond(request, work, doing))
        self.calls[request] = running
        running.add_done_callback(functools.partial(self._forget, request))

    async def _finish(self, request: int) -> None:
        await self.respond(request, self.cleanup(), "cleanup")
        if self.channel is not None:
            self.channel.flush()
        await asyncio.sleep(0)
        if not self.done.done():
            self.done.set_result(None)

    def answer(self, message: frames.Call) -> bytes | None:
        """The channel's ``answer`` to a call that came alone in its read: a ``def``
        command or event handler (``inline``) is run now and its answer returned as the
        frame that leaves at once; None for any other call (``on_message`` takes it)."""
        run = self.inline.get(message.command)
        if run is None:
            return None
        try:
            return frames.encode(_Reply(message.id, run(message)))
        except PlugbayError as exc:
            return frames.encode(frames.Fail(message.id, self.placed(exc)))
        except BaseException as exc:
            return frames.encode(self.failure(message.id, exc, "the call"))

    def answer_now(self, message: frames.Call, run: Callable[[frames.Call], Any]) -> None:
        """A ``def`` command or handler among other frames of a read, run now; its answer
        joins the others' and leaves when the read is done."""
        try:
            self.send(_Reply(message.id, run(message)))
        except PlugbayError as exc:
            self.send(frames.Fail(message.id, self.placed(exc)))
        except BaseException as exc:
            self.fail(message.id, exc, "the call")

    def _run_now(self, spec: CommandSpec, message: frames.Call) -> Any:
        """A ``def`` command's checked result, as it goes on the wire."""
        plugin = self.plugin
        assert plugin is not None  # ``inline`` is set as it loads
        try:
            params = spec.validate_params(message.params, plugin=plugin.id, strict=message.strict)
        except ParameterError as exc:
            raise at_the_boundary(exc) from None
        result = spec.validate_result(spec.func(plugin, **params), plugin=plugin.id)
        if type(result) not in _PLAIN:  # a plain scalar is already what goes on the wire
            result = msgspec.to_builtins(result, str_keys=True)
        return result

    def _handle_now(self, spec: CommandSpec, message: frames.Call) -> None:
        """A ``def`` event handler run: an event's answer is None, whatever the handler
        returns (as :func:`run_handler` has it for every handler)."""
        call_handler(self.plugin, spec, message.params.get("event"))

    def _forget(self, request: int, _task: object) -> None:
        self.calls.pop(request, None)

    def load(self, message: frames.Load) -> None:
        if message.rules and self.guard is None:
            rules = {**message.rules, "data_dir": message.data_dir}  # its own: writable
            self.guard = Guard(message.plugin_id, rules, self.report)
            self.guard.install()
            # a write past the file-size limit: the kernel signals it, whatever made the
            # write (ctypes included); the limit stays an EFBIG error, never a death
            signal.signal(signal.SIGXFSZ, self._file_too_large)
        doing = "loading"
        _memory_mark.disarm()  # the plugin's code runs from here on: it never holds the mark
        try:
            manifest = self.manifest = _manifest_of(message)
            code = import_plugin(manifest)
            doing = f"constructing {code.cls.__name__}"  # inline's words (InlineBackend.start)
            self.plugin = new_instance(code)
        except PlugbayError as exc:
            error = _exit_words.at_import(exc, message.plugin_id, self.guard, self.manifest)
            self.send(frames.Fail(0, error.to_dict()))
            return
        except BaseException as exc:  # a plugin's constructor or module raising anything
            sandboxed = classify(exc, message.plugin_id, self.guard) if self.guard else None
            error = sandboxed or _wrap(
                exc,
                message.plugin_id,
                doing,
                self.manifest,
                file_permissions_hint(exc, self.guard),
            )
            self.send(frames.Fail(0, error.to_dict()))
            return
        self.specs = dict(code.commands)
        self.direct = type(self.plugin).execute is Plugin.execute
        plain = [
            *((name, spec, Worker._run_now) for name, spec in self.specs.items() if self.direct),
            # events never go through ``execute``: a plain def handler is answered as its
            # read is handled too (``loading`` checked every handler as the plugin loaded)
            *(
                (EVENT_PREFIX + name, spec, Worker._handle_now)
                for name, spec in event_handlers(type(self.plugin)).items()
            ),
        ]
        self.inline = {
            name: functools.partial(run, self, spec)  # the function itself: no bound method
            for name, spec, run in plain
            if not spec.is_async and not spec.blocking
        }
        # the host's [policy.bounds] (its defaults when it sent none): a series past its
        # metric-series is dropped here and said once in the plugin's log, as inline,
        # not sent for the host to drop
        total = int(message.bounds.get("metric_series", _DEFAULT_BOUNDS.metric_series))
        metrics = PluginMetrics(manifest.id, max_total=total)
        # the host's [policy.bounds] (its defaults when it sent none): not [monitor]'s
        # log-rate and log-burst, which bound the host's log store, inline plugins too
        rate = float(message.bounds.get("log_rate", _DEFAULT_BOUNDS.log_records_per_second))
        burst = float(message.bounds.get("log_burst", _DEFAULT_BOUNDS.log_burst))
        _lean_records()
        self.forwarder = _LogForwarder(self, rate, burst)
        logging.getLogger("plugbay").addHandler(self.forwarder)
        logging.getLogger("plugbay").setLevel(logging.DEBUG)
        self.context = PluginContext(
            environment=Environment(
                host_version=message.host_version,
                plugin_id=manifest.id,
                plugin_version=str(manifest.version),
                data_dir=Path(message.data_dir),
                mode=message.mode,  # type: ignore[arg-type]
                isolation="process",
                sandboxed=bool(message.rules),  # (empty rules: a trusted plugin's worker)
            ),
            services=_HostServices(self, message.services),
            config=PluginConfig(message.config),
            logger=logging.getLogger(f"plugbay.plugin.{manifest.id}"),
            metrics=metrics,
            secrets=Secrets(message.secrets, plugin=manifest.id, unset=message.unset_secrets),
            events=Events(self.emit_event, plugin=manifest.id, host_measures=True),
        )
        if message.storage == "host":  # a plugin on a Ray node: its store is the host's
            self._keep_storage_at_host(manifest.id, Path(message.data_dir))
        self.plugin.context = self.context
        from plugbay.isolation.diagnostics import stacks_fd

        self.send(
            frames.Loaded(
                [
                    frames.RemoteCommand(
                        spec.name, spec.signature(), spec.describe(), None, spec.timeout
                    )
                    for spec in self.specs.values()
                ],
                not self.direct,
                self.layers,
                sorted(self.inline),
                stacks_fd(),
            )
        )

    def _keep_storage_at_host(self, plugin: str, data_dir: Path) -> None:
        from plugbay.isolation.remote_storage import HostStorage, ask_through

        assert self.context is not None and self.fd is not None
        ask = ask_through(
            lambda: self.channel, self.fd, self.loop, self.host_call, self._host_call_id, plugin
        )
        object.__setattr__(self.context, "storage", HostStorage(ask, data_dir, plugin=plugin))

    def _host_call_id(self) -> int:
        self._next_host_call += 1
        return self._next_host_call

    async def respond(self, request: int, work: Any, doing: str = "the call") -> None:
        try:
            value = await work
        except asyncio.CancelledError:
            return
        except PlugbayError as exc:
            self.send(frames.Fail(request, self.placed(exc)))
        except BaseException as exc:
            self.fail(request, exc, doing)
        else:
            try:
                self.send(frames.Reply(request, value))
            except (TypeError, msgspec.EncodeError, frames.FrameError) as exc:
                self.send(
                    frames.Fail(request, _wrap(exc, None, "sending the result", None).to_dict())
                )

    def fail(self, request: int, exc: BaseException, doing: str) -> None:
        """Answer a request that raised (:meth:`failure`); before a replacement, at once."""
        failed = self.failure(request, exc, doing)
        self.send(failed)
        if failed.error["details"].get("replace") and self.channel is not None:
            self.channel.flush()

    def placed(self, exc: PlugbayError) -> dict[str, Any]:
        """A refusal of the plugin's context names the plugin's line that called it."""
        return at_the_authors_line(exc, self.manifest).to_dict()

    def failure(self, request: int, exc: BaseException, doing: str) -> frames.Fail:
        """The answer to a request that raised: the sandbox's reading of it first (a
        denial, a limit hit), else the plugin's own error. After a limit hit the worker
        exits soon after, so the host replaces it: a process that ran out of memory or
        files is suspect."""
        plugin_id = self.plugin.id if self.plugin is not None else None
        sandboxed = classify(exc, plugin_id, self.guard) if self.guard is not None else None
        error = sandboxed or _wrap(
            exc, plugin_id, doing, self.manifest, file_permissions_hint(exc, self.guard)
        )
        if error.details.get("replace"):
            asyncio.get_running_loop().call_later(0.05, os._exit, 75)
        return frames.Fail(request, error.to_dict())

    def _file_too_large(self, signum: int, frame: object) -> None:
        # told from the loop, not from inside whatever the signal interrupted
        self.loop.call_soon_threadsafe(
            self.report,
            {
                "kind": "limit",
                "limit": "file_size",
                "layer": "rlimits",
                "detail": "a write went past its file-size limit (SIGXFSZ; it failed with EFBIG)",
            },
        )

    def report(self, event: dict[str, Any]) -> None:
        """A security event for the host, from any thread of the worker."""
        if event.get("kind") == "limit":  # one hit heard twice (the signal, the error): once
            now, limit = time.monotonic(), str(event.get("limit"))
            if now - self._limits_told.get(limit, -10.0) < 1.0:
                return
            self._limits_told[limit] = now
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.send(frames.Security(event))
        else:
            loop.call_soon_threadsafe(self.send, frames.Security(event))

    async def initialize(self) -> None:
        assert self.plugin is not None and self.context is not None
        try:
            await lifecycle(self.plugin.initialize, _NO_LIMIT, self.context)
        except PlugbayError as exc:
            raise self._told_the_host(exc) from None
        finally:
            if isinstance(self.context.services, _HostServices):
                self.context.services.loaded()

    def _told_the_host(self, exc: PlugbayError) -> PlugbayError:
        services = self.context.services if self.context is not None else None
        if isinstance(services, _HostServices) and any(exc is r for r in services.refused):
            return told_the_host(exc)
        return exc

    async def export_state(self) -> dict[str, Any]:
        assert self.plugin is not None
        try:
            supported, state = await handover.export_state(self.plugin)
            return {"supported": supported, "state": handover.plain_state(state)}
        except Exception as exc:
            raise _raised(exc, self.plugin.id) from None

    async def import_state(self, state: Any) -> bool:
        assert self.plugin is not None
        try:
            return await handover.import_state(self.plugin, state)
        except Exception as exc:
            raise _raised(exc, self.plugin.id) from None

    async def cleanup(self) -> None:
        if self.plugin is not None:
            try:
                await lifecycle(self.plugin.cleanup, _NO_LIMIT)
            finally:
                if self.context is not None:  # its tasks and store (the host bounds it all)
                    self.stuck = bool(await self.context.close(_TASKS_STOP))
                self._send_figures()  # the worker's goodbye: its last figures and drops

    async def emit_event(self, name: str, payload: dict[str, Any]) -> int:
        """``context.events.emit``: through the host's broker, which knows who sends; the
        payload is measured as its frame is encoded, once, and one over the bound stays
        here (the host's refusal is asked for by its size: ``isolation._emit``)."""
        call_id = self._host_call_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.host_calls[call_id] = future
        try:
            body = emit_encoder.encode(
                frames.HostCall(call_id, EVENTS_TARGET, name, {"payload": payload})
            )
            if len(body) > MAX_PAYLOAD:
                body = near_the_bound(body, call_id, name, payload)
            if self.channel is not None:
                self.channel.send_encoded(body)
            return int(await future)
        except frames.FrameError as exc:  # too large for any frame: it cannot reach the host
            raise ParameterError(
                f"the payload of event '{name}' cannot be sent: it is far over the "
                f"{MAX_PAYLOAD:,}-byte bound ({exc})",
                where=f"context.events.emit({name!r}, ...)",
                hint="send a key or an id in the event and keep the data in context.storage",
            ) from None
        finally:
            self.host_calls.pop(call_id, None)

    async def deliver_event(self, name: str, payload: Any) -> None:
        """An event for the plugin's ``@on_event(name)`` handler (a call to ``event:name``)."""
        plugin = self.plugin
        spec = event_handlers(type(plugin)).get(name) if plugin is not None else None
        if plugin is None or spec is None:
            raise PluginCallError(
                f"no handler for event '{name}' in this worker",
                hint=f'mark a method @on_event("{name}")',
            )
        await run_handler(plugin, spec, payload)

    async def call(self, message: frames.Call) -> Any:
        if message.command.startswith(EVENT_PREFIX):
            name = message.command[len(EVENT_PREFIX) :]
            return await self.deliver_event(name, message.params.get("event"))
        plugin = self.plugin
        spec = self.specs.get(message.command)
        if plugin is None or spec is None:
            raise PluginCallError(f"no command '{message.command}' is loaded in this worker")
        try:
            params = spec.validate_params(message.params, plugin=plugin.id, strict=message.strict)
        except ParameterError as exc:
            raise at_the_boundary(exc) from None
        result: Any
        if not self.direct:
            result = await plugin.execute(Command(spec.name, params))
        elif spec.is_async:
            result = await spec.func(plugin, **params)
        elif spec.blocking:
            result = await run_in_daemon_thread(lambda: spec.func(plugin, **params))
        else:
            result = spec.func(plugin, **params)
        checked = spec.validate_result(result, plugin=plugin.id)
        return msgspec.to_builtins(checked, str_keys=True)


def at_the_boundary(error: ParameterError) -> ParameterError:
    """The call's parameters refused by the typed boundary, before the plugin's code ran:
    the caller's mistake (``isolation.identity`` keeps it so), not the plugin's error."""
    error.details[frames.CHECKED_BY] = "worker"
    return error


def _raised(exc: BaseException, plugin: str | None) -> PlugbayError:
    """The plugin's own exception, named as such (the host words the message)."""
    return PluginCallError(
        f"{type(exc).__name__}: {exc}",
        plugin=plugin,
        details={
            "exception": type(exc).__name__,
            **library_details(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        },
    )


def _wrap(
    exc: BaseException,
    plugin: str | None,
    doing: str,
    manifest: PluginManifest | None,
    hint: str | None = None,
) -> PlugbayError:
    """The plugin's own exception; ``where`` and ``details["raised_at"]`` name the line
    of the plugin's code it was raised at, as an inline call's error does."""
    return PluginCallError(
        f"{doing} raised {type(exc).__name__}: {exc}",
        plugin=plugin,
        where=plugin_frame(exc, manifest) if manifest is not None else None,
        hint=hint or "this is the plugin's own error; the host and other plugins are unaffected",
        details={
            "exception": type(exc).__name__,
            **library_details(exc),
            "raised_at": raised_at(exc, manifest) if manifest is not None else None,
            "traceback": "".join(traceback.format_exception(exc)),
        },
    )


def _channel_for(worker: Worker) -> frames.Channel:
    # set before the connection is made: uvloop may hand over the first frame (Load)
    # before create_connection returns, and its answer must have a channel to leave on
    worker.channel = frames.Channel(worker.on_message, worker.closed)
    worker.channel.answer = worker.answer
    return worker.channel


async def _run(fd: int, layers: list[dict[str, Any]] | None) -> None:
    sock = socket.socket(fileno=fd)
    worker = Worker(layers)
    worker.fd = fd
    loop = asyncio.get_running_loop()
    from plugbay.isolation import diagnostics

    # the worker's own start first: a memory limit that ends it ends it before Load (the
    # plugin's code), while it still holds the mark (``_memory_mark``)
    diagnostics.capture_output(
        loop, worker.send, lambda: worker.plugin.id if worker.plugin else None
    )
    diagnostics.dump_tasks_on_signal(loop)
    await loop.create_connection(functools.partial(_channel_for, worker), sock=sock)
    try:
        await worker.done
    finally:
        if worker.channel is not None:
            worker.channel.close()
        if worker.stuck:  # asyncio.run would wait for that task forever
            sys.stdout.flush()
            os._exit(0)


def main(fd: int, layers: list[dict[str, Any]] | None = None) -> None:
    """Run the worker on an inherited socket until the host says goodbye or goes away.

    ``layers`` are the sandbox layers the zygote applied, reported to the host."""
    from plugbay.isolation import diagnostics

    diagnostics.dump_stacks_on_signal()
    code = 0
    try:
        loops.run(_run(fd, layers), sandboxed=bool(layers))
    except BaseException as exc:  # its words are lost with its output: the code tells the host
        code = _start_memory.exit_code(exc)
        if code == _start_memory.OUT_OF_MEMORY:
            _memory_mark.leave()  # before the plugin's code ran: the host's proof of memory
    finally:
        sys.stdout.flush()
        os._exit(code)
