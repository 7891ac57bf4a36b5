"""Testing plugins on a real host: the spec's ``PDK.testing``.

:class:`PluginHost` starts a real :class:`~plugbay.host.Host` with the plugins
under test, on an event loop of its own in a background thread, and drives it
from ordinary (synchronous) test functions: call commands, assert metrics and
logs, and simulate system events. The same plugin code runs inline, in a
worker process, or in a sandboxed worker, chosen per host. The pytest plugin (``plugbay.pdk.pytest_plugin``,
registered through the ``pytest11`` entry point) hands out hosts with the
``plugbay_host`` fixture and stops them after the test::

    def test_greet(plugbay_host: HostFactory) -> None:
        host = plugbay_host(Path("."), isolation="process")
        assert host.call("acme.greeter", "greet", name="Ada") == "Hello, Ada!"
        host.assert_calls("acme.greeter", "greet", 1)

Results come back as plain data (dicts, lists, strings...): what a caller in
another process or over JSON sees, and the same under every backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, TypeVar

import msgspec

from plugbay.api.errors import PlugbayError, PluginNotFound
from plugbay.model.discover import discover_directory
from plugbay.model.manifest import IsolationMode, PluginManifest, load_manifest

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = ["HostFactory", "Isolation", "LogLine", "PluginHost", "plugin_manifests"]

T = TypeVar("T")

Isolation: TypeAlias = Literal["inline", "process", "sandbox"]

#: how long an assertion waits for a worker's next metrics (they come with its heartbeat)
_WORKER_METRICS_WAIT = 5.0
PathLike: TypeAlias = str | Path


@dataclass(frozen=True, slots=True)
class LogLine:
    """One record a plugin logged (through ``context.logger``)."""

    plugin: str
    level: str
    message: str


class HostFactory(Protocol):
    """The ``plugbay_host`` fixture: start a host with these plugins (stopped after the test)."""

    def __call__(
        self,
        *plugins: PathLike,
        isolation: Isolation | None = "inline",
        config: Mapping[str, Mapping[str, Any]] | None = None,
        grant: bool = True,
        check: bool = True,
    ) -> PluginHost: ...


def plugin_manifests(paths: Sequence[PathLike]) -> list[PluginManifest]:
    """The manifests at ``paths``: each a plugin (its directory, ``plugin.toml`` or
    ``pyproject.toml``) or a directory of plugins."""
    found: list[PluginManifest] = []
    for raw in paths:
        path = Path(raw)
        if (
            path.is_file()
            or (path / "plugin.toml").is_file()
            or (path / "pyproject.toml").is_file()
        ):
            found.append(load_manifest(path))
            continue
        discovery = discover_directory(path)
        if discovery.problems:
            raise discovery.problems[0]
        found.extend(discovery.manifests)
    return found


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[LogLine] = []

    def emit(self, record: logging.LogRecord) -> None:
        plugin = record.name.removeprefix("plugbay.plugin.")
        self.lines.append(LogLine(plugin, record.levelname.lower(), record.getMessage()))


class PluginHost:
    """A running host for tests, driven synchronously. See the module docstring.

    ``isolation`` runs every plugin given ``inline`` (trusted, in the host's process),
    in a worker ``process`` of its own (trusted), or in a ``sandbox``: an untrusted
    plugin's worker with every kernel layer the machine has, as a host runs third-party
    plugins by default (``None``: wherever the host's default policy puts it).
    ``grant`` grants each plugin the
    permissions its manifest asks for, as an operator would. With ``check``,
    starting raises if a plugin given does not become active, with its reason.
    """

    def __init__(
        self,
        plugins: Sequence[PathLike],
        *,
        isolation: Isolation | None = "inline",
        config: Mapping[str, Mapping[str, Any]] | None = None,
        grant: bool = True,
        check: bool = True,
        state_dir: PathLike | None = None,
        timeout: float = 60.0,
    ) -> None:
        if isolation not in ("inline", "process", "sandbox", None):
            raise PlugbayError(
                f"'{isolation}' is not an isolation backend",
                hint="use isolation='inline', 'process' or 'sandbox'",
            )
        self.manifests = plugin_manifests(plugins)
        if isolation is not None:
            asked: IsolationMode = "inline" if isolation == "inline" else "process"
            self.manifests = [dataclasses.replace(m, isolation=asked) for m in self.manifests]
        self.isolation = isolation
        self._config = {k: dict(v) for k, v in (config or {}).items()}
        self._grant = grant
        self._check = check
        self._timeout = timeout
        self._own_state: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._own_state = tempfile.TemporaryDirectory(prefix="plugbay-test-")
            state_dir = self._own_state.name
        self.state_dir = Path(state_dir)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="plugbay-test-host", daemon=True
        )
        self._host: Host | None = None
        self._logs = _LogCapture()
        self._plugin_logger = logging.getLogger("plugbay.plugin")
        self._old_level = self._plugin_logger.level

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PluginHost:
        """Start the host and load the plugins (raises, with each reason, when one fails)."""
        self._plugin_logger.addHandler(self._logs)
        self._plugin_logger.setLevel(logging.DEBUG)
        self._thread.start()
        try:
            self._run(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    async def _start(self) -> None:
        from plugbay.model.bundled import bundled_needed
        from plugbay.runtime.host import Host

        # The test is the operator: "inline" and "process" trust the plugins under test
        # (in the host's process, or in a worker of their own); "sandbox" does not, so the
        # host's policy confines each in a sandboxed worker, as a host does by default.
        trusted = self.isolation in ("inline", "process")
        host = Host(
            None,
            state_dir=self.state_dir,
            config=self._config,
            entry_points=False,
            mode="test",
            inline=[m.id for m in self.manifests] if trusted else (),
        )
        self._host = host
        await host.start()
        for manifest in self.manifests:
            host.registry.register(manifest)
            if self._grant and host.state is not None:
                for permission in manifest.permissions.asked():
                    host.state.grant(manifest.id, permission)
        # a bundled plugin the plugins under test depend on (utility.formatters, …)
        for manifest in bundled_needed(host.registry.manifests()):
            host.registry.register(manifest)
        plan = host.registry.resolve_all()
        await host.manager.load_plan(plan)
        await host.events.drain()
        if self._check:
            failed = [r for r in host.plugins() if str(r.state) != "active"]
            if failed:
                reasons = "; ".join(f"{r.id} is {r.state}: {r.reason}" for r in failed)
                tracebacks = "\n".join(r.traceback for r in failed if r.traceback)
                raise PlugbayError(
                    f"not every plugin started: {reasons}",
                    hint="fix the plugin, or pass check=False to test the failure itself",
                    details={"traceback": tracebacks},
                )

    def stop(self) -> None:
        """Clean every plugin up and stop the host (idempotent)."""
        if self._thread.is_alive():
            if self._host is not None:
                self._run(self._host.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self._timeout)
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()
        self._plugin_logger.removeHandler(self._logs)
        self._plugin_logger.setLevel(self._old_level)
        if self._own_state is not None:
            self._own_state.cleanup()
            self._own_state = None

    def __enter__(self) -> PluginHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ driving the host

    @property
    def host(self) -> Host:
        """The real :class:`~plugbay.host.Host` (use :meth:`run` for its coroutines)."""
        if self._host is None:
            raise PlugbayError("the test host is not started", hint="call start() first")
        return self._host

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(self._timeout)

    def run(self, fn: Callable[[Host], Awaitable[T]]) -> T:
        """Run ``await fn(host)`` on the host's loop: ``host.run(lambda h: h.reload(id))``."""

        async def go() -> T:
            return await fn(self.host)

        return self._run(go())

    def call(self, plugin_id: str, command: str, /, **params: Any) -> Any:
        """Call a command through the host (checked, timed, counted); plain-data result."""
        return self._run(self._call(plugin_id, command, params))

    async def acall(self, plugin_id: str, command: str, /, **params: Any) -> Any:
        """:meth:`call` for ``async def`` tests (any event loop)."""
        future = asyncio.run_coroutine_threadsafe(
            self._call(plugin_id, command, params), self._loop
        )
        return await asyncio.wrap_future(future)

    async def _call(self, plugin_id: str, command: str, params: dict[str, Any]) -> Any:
        result = await self.host.call_with(plugin_id, command, params)
        # the same plain data a worker sends back: MessagePack there and back
        return msgspec.msgpack.decode(msgspec.msgpack.encode(result))

    def emit(self, kind: str, /, source: str = "test", **data: Any) -> None:
        """Simulate a system event and wait until every system plugin has handled it."""

        async def go() -> None:
            self.host.events.emit(kind, source, **data)
            await self.host.events.drain()

        self._run(go())

    def publish(self, name: str, /, **payload: Any) -> int:
        """Send the plugin event ``name`` to its listeners as the host would (from
        ``test``, not checked against any manifest); returns how many listen to it.
        Listeners handle it asynchronously: assert its effect with :meth:`eventually`."""

        async def go() -> int:
            return await self.host.manager.plugin_events.publish(name, payload, source="test")

        return self._run(go())

    def eventually(
        self, check: Callable[[], T], /, *, what: str = "the condition", timeout: float = 10.0
    ) -> T:
        """Call ``check`` until it returns a truthy value, and return it (events and
        background tasks work asynchronously); fails after ``timeout`` seconds, saying
        ``what`` never happened and the last value seen. A guard, not a timing test."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"never: {what} (last: {value!r} after {timeout:g} s)")
            time.sleep(0.02)

    def state(self, plugin_id: str) -> str:
        """``active``, ``failed``, ``disabled``, ``on-demand``..."""
        return str(self.host.plugin(plugin_id).state)

    def reason(self, plugin_id: str) -> str | None:
        """Why a plugin failed or is disabled."""
        return self.host.plugin(plugin_id).reason

    def plugin(self, plugin_id: str) -> Any:
        """The plugin object itself (inline plugins only)."""
        return self.host.manager.get_plugin(plugin_id)

    # ------------------------------------------------------------------ metrics

    def metrics(self, plugin_id: str) -> dict[str, Any]:
        """The plugin's metrics snapshot: calls, errors, per command, its own counters."""
        rec = self.host.plugin(plugin_id)
        if rec.metrics is None:
            raise PluginNotFound(f"has no metrics (state {rec.state})", plugin=plugin_id)
        return rec.metrics.snapshot()

    def _command_stats(self, plugin_id: str, command: str) -> dict[str, Any]:
        stats = self.metrics(plugin_id)["commands"].get(command)
        return dict(stats) if stats else {"calls": 0, "errors": 0, "errors_by_type": {}}

    def assert_calls(self, plugin_id: str, command: str, expected: int) -> None:
        """Assert how many times ``command`` was called (failures included)."""
        calls = self._command_stats(plugin_id, command)["calls"]
        assert calls == expected, f"{plugin_id}.{command}: {calls} call(s), expected {expected}"

    def assert_errors(
        self, plugin_id: str, command: str, expected: int, *, error: str | None = None
    ) -> None:
        """Assert how many calls of ``command`` failed (only of type ``error`` when given)."""
        stats = self._command_stats(plugin_id, command)
        errors = stats["errors"] if error is None else stats["errors_by_type"].get(error, 0)
        what = f"{error} error(s)" if error else "error(s)"
        assert errors == expected, (
            f"{plugin_id}.{command}: {errors} {what}, expected {expected} "
            f"(by type: {stats['errors_by_type']})"
        )

    def assert_counter(self, plugin_id: str, name: str, expected: float, **labels: str) -> None:
        """Assert a counter the plugin keeps with ``context.metrics.increment`` (in a worker
        too: its counters reach the host with each heartbeat's answer, which this awaits)."""
        self._assert_series(plugin_id, "counters", name, expected, labels)

    def assert_gauge(self, plugin_id: str, name: str, expected: float, **labels: str) -> None:
        """Assert a gauge the plugin sets with ``context.metrics.gauge``."""
        self._assert_series(plugin_id, "gauges", name, expected, labels)

    def _assert_series(
        self, plugin_id: str, kind: str, name: str, expected: float, labels: dict[str, str]
    ) -> None:
        key = name + (
            "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else ""
        )
        series = self.metrics(plugin_id)[kind]
        if series.get(key) != expected and self.host.plugin(plugin_id).isolation != "inline":
            # a worker sends its own counters and gauges with each heartbeat's answer:
            # wait for the next ones (bounded) rather than read a stale copy
            deadline = time.monotonic() + _WORKER_METRICS_WAIT
            while series.get(key) != expected and time.monotonic() < deadline:
                time.sleep(0.02)
                series = self.metrics(plugin_id)[kind]
        value = series.get(key)
        assert value == expected, (
            f"{plugin_id}: {kind[:-1]} {key} is {value}, expected {expected} "
            f"(it has: {', '.join(sorted(series)) or 'none'})"
        )

    # ------------------------------------------------------------------ logs

    def logs(self, plugin_id: str | None = None, *, level: str | None = None) -> list[LogLine]:
        """What plugins logged since the host started (one plugin's, at one level)."""
        return [
            line
            for line in list(self._logs.lines)
            if (plugin_id is None or line.plugin == plugin_id)
            and (level is None or line.level == level.lower())
        ]

    def assert_logged(self, plugin_id: str, text: str, *, level: str | None = None) -> None:
        """Assert the plugin logged a message containing ``text``."""
        lines = self.logs(plugin_id, level=level)
        if not any(text in line.message for line in lines):
            seen = "\n  ".join(f"{x.level}: {x.message}" for x in lines) or "(nothing)"
            raise AssertionError(
                f"{plugin_id} logged no message containing {text!r}; it logged:\n  {seen}"
            )
