"""What ``plugbay run`` does once its options are read: claim the state directory,
start the plugins (the zygote booting while the host's own modules load), print them,
serve the API, /metrics and the watcher until a signal, and stop cleanly.

Shared by the typer command (:mod:`plugbay.cli.run`) and the lean path
(:mod:`plugbay.cli._entry`), which reaches the plugins without loading any command
framework; nothing here imports typer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plugbay.api.errors import PlugbayError
from plugbay.cli._defaults import host_kwargs
from plugbay.cli._host_log import attach as attach_log
from plugbay.cli._host_log import detach as detach_log

if TYPE_CHECKING:
    from rich.console import Console

    from plugbay.cli._run_args import RunOptions
    from plugbay.isolation.zygote import Zygote
    from plugbay.isolation.zygote_early import EarlyZygote
    from plugbay.runtime.host import Host

__all__ = [
    "API_GRACE",
    "DRAIN_SECONDS",
    "EXIT_INTERRUPTED",
    "Serving",
    "run_command",
    "run_host",
]

#: on SIGTERM, how long calls in flight may run before plugins are cleaned up
DRAIN_SECONDS = 10.0
#: the exit code after a stop asked for with Ctrl-C (SIGINT): 128 + 2, as shells report it
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Serving:
    """What ``plugbay run`` serves beside the plugins."""

    bind: tuple[str, int] | None  # the API and dashboard, or None
    max_body: int
    metrics_port: int | None  # Prometheus /metrics, or None
    watch: bool
    metrics_public: bool = False  # /metrics without the API token
    drain: float = DRAIN_SECONDS  # on a stop, seconds calls in flight may take to finish


def run_host(
    kwargs: dict[str, Any],
    serving: Serving | None,
    started: float,
    early: EarlyZygote | None = None,
) -> int:
    """Run the host the options ask for until a signal (``serving=None``: start, show,
    stop); the exit code. A :class:`PlugbayError` is printed as one paragraph: 1.
    ``early``: the zygote spawned before this (``runtime.startup.spawn_zygote``)."""
    try:
        from plugbay.isolation import loops  # uvloop when installed (PLUGBAY_LOOP=asyncio: not)

        return loops.run(_run(kwargs, serving, started, early))
    except PlugbayError as exc:
        from plugbay.cli._output import say_error

        say_error(exc)
        return 1


async def _run(
    kwargs: dict[str, Any], serving: Serving | None, started: float, early: EarlyZygote | None
) -> int:
    """:func:`_run_host` with the process backend's zygote booting from the first
    moment: a fresh interpreter whose imports overlap the host's own (the host takes
    it once open; one it did not take is stopped here), and the storage quota's probe
    running beside them."""
    from plugbay.runtime.startup import boot_zygote, discard_zygote, probe_storage

    zygote = await boot_zygote(early)
    probing = probe_storage()  # beside it: the first sandboxed plugin would wait for it
    try:
        return await _run_host(kwargs, serving, started, zygote)
    finally:
        with contextlib.suppress(Exception):  # its own failure is the first start's to say
            await probing
        if zygote.pid is not None:  # not the host's: it stopped it otherwise
            await discard_zygote(zygote)


async def _run_host(
    kwargs: dict[str, Any], serving: Serving | None, started: float, zygote: Zygote
) -> int:
    """Claim the state directory, serve the API (``/healthz`` answers while plugins
    start), start and show the plugins, serve until a signal (``serving=None``: only
    start), stop cleanly; the exit code. SIGTERM / Ctrl-C is honoured at any point from
    the first line on: plugins not yet started never start, calls in flight drain
    (bounded). A stop asked for by Ctrl-C (SIGINT) exits 130 once it is done, as a
    shell expects of an interrupted command; one asked for by SIGTERM exits 0."""
    from plugbay.runtime.host import Host

    host = Host(**kwargs)
    since = time.time()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    api = _Api(host, since)
    asked: list[int] = []  # the signals that asked for the stop

    def stopping(signum: int) -> None:  # SIGTERM / Ctrl-C, at any point from here on
        asked.append(signum)
        stop.set()
        host.request_stop()
        api.go()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping, sig)
    try:
        code = await _start_and_serve(host, api, zygote, serving, started, stop)
    finally:
        host.request_stop()
        api.go()
        with contextlib.suppress(Exception):  # a start going on finishes first
            await api.ready()
        try:  # each step whatever an earlier one raised, then the first failure
            await _stop_serving(host, api)
        finally:
            detach_log(api.log)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if serving is not None:
                _out().print("stopped")
    return EXIT_INTERRUPTED if code == 0 and signal.SIGINT in asked else code


async def _stop_serving(host: Host, api: _Api) -> None:
    """The stop of ``plugbay run``: the plugins (a call still running gets its error
    through the API), the API, the announcement, then the host; each step runs whatever
    an earlier one raised (``runtime.stop_steps``: logged as it fails), and the first
    failure is raised once all have run."""
    from plugbay.runtime.stop_steps import StopSteps

    steps = StopSteps()
    if (web := api.web) is not None:
        await steps.run(
            "stopping the plugins (their cleanup)",
            "a plugin not cleaned up lost what its cleanup() would have saved; the host's "
            "stop tries again",
            host.manager.shutdown,
        )
        await steps.run(
            "closing the HTTP API",
            "its port is free once this process ends",
            web.stop,
        )
    if (announcement := api.announcement) is not None:

        async def unannounce() -> None:
            announcement.unlink(missing_ok=True)

        await steps.run(
            f"removing {announcement}",
            "plugbay commands may still look for this host there: the next host's start "
            "removes it, or delete it",
            unannounce,
        )
    try:
        await host.stop()  # its own steps log each failure (runtime.stop_steps)
    except BaseException as exc:
        steps.failed.append(exc)
    steps.raise_first()


async def _start_and_serve(
    host: Host,
    api: _Api,
    zygote: Zygote,
    serving: Serving | None,
    started: float,
    stop: asyncio.Event,
) -> int:
    """Open the host, start and show its plugins, serve until ``stop`` (``serving=None``:
    only start); 1 when ``--once`` found a plugin failed, else 0. The stop is the
    caller's."""
    from plugbay.runtime.startup import warm_up

    await host.open()  # the state directory is ours (or another host's: refused)
    api.log = attach_log(_state_dir(host))  # the host's warnings and errors: host.log
    if api.log is not None and host.swept is not None and host.swept.record is not None:
        api.log.handle(host.swept.record)  # said while the state was opened, before the log
    # the zygote (booting since the first line) is the host's; the API is built meanwhile
    await warm_up(host.manager.backends, zygote)
    # the API comes up once the plugins are active, or while a long start goes on
    # (/healthz answers, /readyz tells starting from ready): see API_GRACE
    api.begin(serving.bind if serving is not None else None, serving)
    if host.swept:
        _out().print(f"[yellow]{_escape(host.swept.describe())}[/] (left by an earlier host)")
    output = asyncio.ensure_future(asyncio.to_thread(_load_output))
    try:
        await host.start()
    finally:
        with contextlib.suppress(Exception):  # printing loads it anyway, and says why
            await output
    if stop.is_set():
        _out().print("stopping: a stop was asked for during startup")
        return 0
    # the plugins answer calls from here (``host.call``, the CLI in this process): said
    # now, not once the API's modules have loaded; "serving" says when the API is up
    failed = _print_started(host, started)
    api.go()
    await api.ready()
    if stop.is_set():
        _out().print("stopping: a stop was asked for during startup")
        return 0
    if serving is None:
        return 1 if failed else 0
    await _serve(host, api.since, serving, stop, api.url)
    return 0


class _Api:
    """The API and dashboard of ``plugbay run``, started beside the plugins, and the
    announcement (host.json) that tells other plugbay commands where it is."""

    def __init__(self, host: Host, since: float) -> None:
        self.host = host
        self.since = since
        self.web: Any = None
        self.announcement: Path | None = None
        #: the handler writing the host's own log (``cli._host_log``), once it is open
        self.log: logging.Handler | None = None
        self._starting: asyncio.Future[None] | None = None
        self._go = asyncio.Event()

    @property
    def url(self) -> str | None:
        return self.web.url if self.web is not None else None

    def begin(self, bind: tuple[str, int] | None, serving: Serving | None) -> None:
        if bind is None or serving is None:
            self.announcement = _announce(self.host, self.since)
            return
        self._starting = asyncio.ensure_future(self._start(bind, serving.max_body))

    def go(self) -> None:
        """Load the API now: the plugins are active (or a stop was asked for)."""
        self._go.set()

    async def _start(self, bind: tuple[str, int], max_body: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._go.wait(), API_GRACE)
        # FastAPI and uvicorn take about 0.3 s of CPU to import: off the loop, which
        # may still be starting plugins (mostly waiting on their workers)
        await asyncio.to_thread(_load_web)
        self.web = await _start_http(self.host, bind, max_body)
        self.announcement = _announce(self.host, self.since, http=self.url)

    async def ready(self) -> None:
        if self._starting is not None:
            await asyncio.shield(self._starting)


#: seconds into a start after which the API loads even though plugins are still
#: starting, so /healthz and /readyz answer during a long start. Until then its import
#: (about 0.3 s of CPU, in a thread that shares the GIL) would slow the start itself
#: on a busy machine; a start as short as plugbay run's bundled set never needs it.
API_GRACE = 1.0

#: how long the importing thread may hold the GIL while the loop wants it (Python's
#: default is 5 ms)
_IMPORT_SWITCH_INTERVAL = 0.0005


_switching = threading.Lock()
_importers: list[float] = []  # the interval to restore, once per importing thread


@contextlib.contextmanager
def _short_switches() -> Iterator[None]:
    """A short switch interval while this thread imports beside the loop; the one found
    before the first such thread is put back when the last one ends."""
    with _switching:
        _importers.append(sys.getswitchinterval())
        sys.setswitchinterval(min(_importers[0], _IMPORT_SWITCH_INTERVAL))
    try:
        yield
    finally:
        with _switching:
            first = _importers[0]
            _importers.pop()
            if not _importers:
                sys.setswitchinterval(first)


def _load_web() -> None:
    """Import the API's modules. Meanwhile the loop thread wakes many times per plugin
    start (a worker forked, its listener received, initialize answered), each time
    waiting for this thread to yield the GIL: a short switch interval while it imports
    keeps each wait short, instead of up to 5 ms a wake."""
    import importlib

    with _short_switches():
        for module in ("plugbay.web._app", "plugbay.web._server"):
            importlib.import_module(module)


def _load_output() -> None:
    """Load rich and rehearse the plugin table (``_listing.rehearse``) while the plugins
    start, mostly waiting on their workers: the table and summary line printed once
    they are active are then only rendered (rich's import and first render were some
    20-30 ms of the host's own time before "ready")."""
    with _short_switches():
        from plugbay.cli._listing import rehearse

        rehearse()


def _print_started(host: Host, started: float) -> int:
    """The plugin table and the summary line; how many plugins failed."""
    from plugbay.cli._listing import listing_of, print_listing

    print_listing(listing_of(host))
    records = host.plugins()
    active = sum(1 for r in records if str(r.state) == "active")
    failed = sum(1 for r in records if str(r.state) == "failed")
    lazy = sum(1 for r in records if str(r.state) == "on-demand")
    _out().print(
        f"[bold]plugbay {host.version}[/]: {active} active, {failed} failed, "
        + (f"{lazy} on demand, " if lazy else "")
        + f"ready in {(time.perf_counter() - started) * 1000:.0f} ms "
        f"(state: {host.state_dir})"
    )
    return failed


def _out() -> Console:
    """Where ``plugbay run`` prints: rich loads once something is printed (or while the
    plugins start, :func:`_load_output`), not before the host's own modules."""
    from plugbay.cli._output import out

    return out


def _err() -> Console:
    from plugbay.cli._output import err

    return err


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


async def _serve(
    host: Host, since: float, serving: Serving, stop: asyncio.Event, http_url: str | None
) -> None:
    """Serve /metrics and watch (as asked) until ``stop``; then drain the calls in flight."""
    metrics_server, port = _start_metrics(host, serving.metrics_port, serving.metrics_public)
    if port is not None:
        _announce(host, since, http=http_url, metrics_port=port)
    watcher = await _start_watching(host, stop) if serving.watch and not stop.is_set() else None
    _out().print("serving; press Ctrl-C to stop")
    sys.stdout.flush()
    await stop.wait()
    if watcher is not None:
        await asyncio.wait([watcher], timeout=2)
    # new API calls are answered 503 + Retry-After from here; those running finish
    still = await host.drain_calls(serving.drain)
    _out().print(
        "stopping: cleaning up plugins in reverse order"
        + (f" ({still} call(s) still running after {serving.drain:g} s)" if still else "")
    )
    if metrics_server is not None:
        metrics_server.shutdown()


def _metrics_check(host: Host, host_token: Callable[[str], bool]) -> Callable[[str], bool]:
    """The metrics port takes what the API's ``/metrics`` takes: the host's token, or a
    scoped token that is neither revoked nor expired (every scope reads)."""
    from plugbay.web.scopes import Access, scoped_access

    state = host.state

    def check(given: str) -> bool:
        if host_token(given):
            return True
        return state is not None and isinstance(scoped_access(state, given), Access)

    return check


def _start_metrics(host: Host, wanted: int | None, public: bool) -> tuple[Any, int | None]:
    """Serve /metrics on 127.0.0.1 (asking for the API token unless ``public``); a taken
    port is a warning, the host still serves."""
    if wanted is None:
        return None, None
    from plugbay.runtime.prometheus import serve_metrics

    check = None
    if not public:
        from plugbay.web.token import TokenFile

        tokens = TokenFile(host.state_dir or Path(".plugbay"))
        tokens.ensure()
        check = _metrics_check(host, tokens.matches)
    try:
        server, port = serve_metrics(host.manager, wanted, monitor=host.monitor, token=check)
    except OSError as exc:
        _err().print(
            f"[yellow]warning:[/] cannot serve /metrics on 127.0.0.1:{wanted}: "
            f"{_escape(str(exc))}; choose another with --metrics-port, or --no-metrics"
        )
        return None, None
    _out().print(f"metrics: http://127.0.0.1:{port}/metrics")
    if check is not None:
        _out().print(
            "[dim]metrics need the API token ('Authorization: Bearer …', "
            "'plugbay token' shows it); --metrics-public serves them without[/]"
        )
    return server, port


async def _start_watching(host: Host, stop: asyncio.Event) -> asyncio.Future[None]:
    from plugbay.runtime.watch import PluginWatcher

    watching = PluginWatcher(host, on_change=_print_watch)
    watcher = asyncio.ensure_future(watching.run(stop))
    ready = asyncio.ensure_future(watching.ready.wait())
    await asyncio.wait([watcher, ready], return_when=asyncio.FIRST_COMPLETED, timeout=10)
    ready.cancel()
    _out().print("watching " + ", ".join(str(d) for d in host.plugin_dirs) + " for changes")
    return watcher


#: a watch result that is not a failed action, in its own words (not "missing failed")
_NOT_DONE: Final = {"missing": "manifest gone"}


def _print_watch(result: Any) -> None:
    stamp = time.strftime("%H:%M:%S")
    if result.ok:
        took = f" in {result.seconds * 1000:.0f} ms" if result.seconds else ""
        _out().print(f"[dim]{stamp}[/] [green]{_escape(result.message)}[/]{took}")
    else:
        said = _NOT_DONE.get(result.action, f"{result.action} failed")
        _out().print(f"[dim]{stamp}[/] [red]{said}:[/] {_escape(result.message)}")
    sys.stdout.flush()


def _announce(
    host: Host, since: float, *, http: str | None = None, metrics_port: int | None = None
) -> Path:
    """Tell other plugbay commands that a host serves this state directory (and where)."""
    from plugbay.runtime.lifecycle import (  # (plugbay.web.client would load httpx)
        HOST_FILE,
        directory_identity,
    )

    path = _state_dir(host) / HOST_FILE
    path.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                # which directory it serves: a copy of this one (its host.json copied with
                # it) is not served by this host (``plugbay.web.client.running_host``)
                "state": directory_identity(_state_dir(host)),
                "since": since,
                "plugins": [str(d) for d in host.plugin_dirs],
                "http": http,
                "metrics_port": metrics_port,
            }
        )
    )
    return path


def _state_dir(host: Host) -> Path:
    assert host.state_dir is not None  # the CLI always gives the host one
    return Path(host.state_dir)


async def _start_http(host: Host, bind: tuple[str, int], max_body: int) -> Any:
    """Serve the API and dashboard; a taken port is a warning, the host still serves."""
    from plugbay.web import HttpServer, TokenFile, create_app

    tokens = TokenFile(_state_dir(host))
    token, made = tokens.ensure()
    server = HttpServer(create_app(host, tokens=tokens, max_body=max_body), *bind)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        if exc.errno != errno.EADDRINUSE or bind[1] == 0:
            _err().print(
                f"[yellow]warning:[/] cannot serve the API on {bind[0]}:{bind[1]}: "
                f"{_escape(exc.strerror or str(exc))}; choose another with --http HOST:PORT, "
                "or --no-http"
            )
            return None
        # the port is taken: any free one, so the CLI can still reach this host (host.json)
        server = HttpServer(create_app(host, tokens=tokens, max_body=max_body), bind[0], 0)
        await server.start()
        _err().print(
            f"[yellow]warning:[/] {bind[0]}:{bind[1]} is taken; the API is on "
            f"{server.url} instead (plugbay commands find it in host.json); "
            "choose a port with --http HOST:PORT"
        )
    _out().print(f"api: {server.url}/api/v1  (OpenAPI: {server.url}/openapi.json)")
    if made:
        _out().print(
            f"API token (made now, shown this once; 'plugbay token' shows it again): {token}\n"
            f"dashboard: {server.url}/?token={token}"
        )
    else:
        _out().print(f"dashboard: {server.url}/ ('plugbay token' prints a sign-in link)")
    return server


def run_command(
    options: RunOptions,
    bind: tuple[str, int] | None,
    started: float,
    early: EarlyZygote | None = None,
) -> int:
    """``plugbay run`` with ``options`` (``bind``: the API's address, already checked;
    ``early``: the zygote the lean path spawned as it began); the exit code."""
    serving = None
    if not options.once:
        serving = Serving(
            bind=None if options.no_http else bind,
            max_body=options.http_max_body,
            metrics_port=None if options.no_metrics else options.metrics_port,
            watch=options.watch,
            metrics_public=options.metrics_public,
            drain=options.drain,
        )
    plugins = list(options.plugins) if options.plugins else None
    kwargs = host_kwargs(plugins, options.state, options.config)
    return run_host(kwargs, serving, started, early)
