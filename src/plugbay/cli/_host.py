"""The host a command talks to: the running one, through its HTTP API, else one started here.

Every command that acts on plugins opens :func:`the_host` and asks it in the user's
words (``host.reload(plugin_id)``); whether a ``plugbay run`` on the same state
directory answers through its API (:class:`RemoteHost`) or a host is started in this
process for the command (:class:`LocalHost`), the answer has one shape, the one
``docs/cli-json.md`` documents. A failure is one paragraph and exit 1 (or a JSON error).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from plugbay.api.errors import DependentsError, PlugbayError, PluginNotFound
from plugbay.cli._console import err, fail
from plugbay.cli._listing import LIST_KEYS, Listing, list_row, listing_of
from plugbay.cli._options import host_kwargs, to_builtins
from plugbay.pdk.params import parse_params

if TYPE_CHECKING:
    from plugbay.runtime.host import Host
    from plugbay.web.client import HostClient

__all__ = [
    "LIST_KEYS",
    "HostAccess",
    "Listing",
    "LocalHost",
    "RemoteHost",
    "host_on",
    "in_process",
    "listing_of",
    "no_api",
    "the_host",
    "unannounced_host",
]

T = TypeVar("T")

#: an upgrade's answer: what moved (id: [from, to]), the version passed over, and how the
#: moved plugins' commands changed (``plugbay.runtime.command_changes``; ``None``: a dry run)
Upgraded = tuple[
    dict[str, list[str]], dict[str, Any] | None, dict[str, list[dict[str, Any]]] | None
]


class HostAccess(Protocol):
    """What a command can ask of the host; each answer has one shape, wherever it comes from."""

    def plugins(self) -> Listing: ...

    def info(self, plugin_id: str) -> dict[str, Any]: ...

    def call(self, plugin_id: str, command: str, pairs: list[str]) -> Any: ...

    def call_many(self, plugin_id: str, command: str, params: list[dict[str, Any]]) -> list[Any]:
        """Each call's value or the PlugbayError it failed with, in order."""
        ...

    def metrics(self) -> str: ...

    def reload(self, plugin_id: str) -> dict[str, Any]: ...

    def load(self, plugin_id: str) -> dict[str, Any]:
        """``{id, version, state, started}``: ``started`` empty when it was active."""
        ...

    def unload(self, plugin_id: str, *, cascade: bool) -> dict[str, Any]:
        """``{id, state, stopped}``: ``stopped`` empty when it was not running."""
        ...

    def rollback(
        self, plugin_id: str, to: str | None, *, with_dependents: bool = False
    ) -> dict[str, Any]:
        """The swap (``_swap``), with ``dependents``: each one rolled back with it."""
        ...

    def upgrade(
        self, plugin_id: str, version: str | None, *, with_dependents: bool, dry_run: bool
    ) -> Upgraded:
        """What moved (id: [from, to]), the newer version passed over, if any, and each
        moved plugin's changed commands (``None`` on a dry run: no new code is loaded)."""
        ...

    def enable(self, plugin_id: str) -> str | None: ...

    def disable(self, plugin_id: str, reason: str | None, *, cascade: bool) -> list[str]: ...

    def history(self, plugin_id: str | None, limit: int) -> list[dict[str, Any]]: ...

    def snapshot(self) -> dict[str, Any]: ...

    def readiness(self) -> dict[str, Any] | None: ...

    def wait(self, seconds: float) -> None: ...


@contextlib.contextmanager
def the_host(
    state: Path,
    plugins: list[Path] | None = None,
    config: Path | None = None,
    *,
    load: list[str] | None = None,
    as_json: bool = False,
) -> Iterator[HostAccess]:
    """The host serving ``state`` through its API, else one started here on first need
    (only ``load`` and what it needs, when given). A :class:`PlugbayError` inside is
    printed as one paragraph (or JSON) and exits 1."""
    from plugbay.web.client import connect

    kwargs = host_kwargs(plugins, state, config)
    if load is not None:
        kwargs["load"] = load
    try:
        client = connect(state)
        if client is not None:
            with client:
                yield RemoteHost(client, state)
        else:
            running = host_on(state)
            with contextlib.closing(LocalHost(kwargs, running)) as local:
                yield local
    except PlugbayError as exc:
        if isinstance(exc, DependentsError):  # the cascade as this command line asks for it
            exc.asked_through("cli")
        fail(exc, as_json=as_json)


def host_on(state: Path) -> dict[str, Any] | None:
    """The host running on ``state``, announced (``running_host``'s answer) or not
    (:func:`unannounced_host`); None when none runs."""
    from plugbay.web.client import running_host

    return running_host(state) or unannounced_host(state)


def unannounced_host(state: Path) -> dict[str, Any] | None:
    """A host that holds ``state``'s lock and announced nothing in ``host.json`` (an
    application's ``Host``, or a ``plugbay run`` still starting), in the shape of
    ``running_host``'s answer: its pid, since when its process runs, no API. None when no
    other process holds the lock."""
    import os

    from plugbay.runtime.lifecycle import lock_holder

    pid = lock_holder(state)
    if pid is None or pid == os.getpid():
        return None
    import psutil

    try:  # what it recorded since its process started is what it did
        since = psutil.Process(pid).create_time() if pid > 0 else 0.0
    except psutil.Error:
        return None  # gone since
    return {"pid": pid, "since": since, "plugins": [], "http": None, "announced": False}


def no_api(running: dict[str, Any], state: Path) -> str:
    """What a command beside a host serving no API can show, and what shows the rest."""
    if running.get("announced", True):
        who = f"the host on {state.resolve()} (pid {running['pid']}) serves no API"
        then = "restart it without --no-http to see them here"
    else:
        who = (
            f"a host (pid {running['pid']}) holds {state.resolve()} and serves no API (an "
            "application's Host, or a 'plugbay run' still starting)"
        )
        then = "ask the application (host.info), or serve the plugins with 'plugbay run'"
    return (
        f"{who}: state, version, reason and load time are what it recorded; its live "
        f"figures (commands, config, usage, permissions in force) are not known here: {then}"
    )


def in_process(
    kwargs: dict[str, Any], body: Callable[[Host], Awaitable[T]], *, as_json: bool = False
) -> T:
    """``body`` on a host started here for it (for commands only a local host can do)."""
    from plugbay.runtime.host import Host

    async def go() -> T:
        async with Host(**kwargs) as host:
            return await body(host)

    try:
        return asyncio.run(go())
    except PlugbayError as exc:
        fail(exc, as_json=as_json)


def refusal(running: dict[str, Any], state: Path, what: str) -> PlugbayError:
    """A second host on a served state directory would fight the first one over it."""
    return PlugbayError(
        f"a host (pid {running['pid']}) serves {state}; '{what}' against a running host "
        "goes through its HTTP API",
        hint="stop that host first (Ctrl-C), run the command, then start it again; "
        "or use 'plugbay run --watch', which reloads on save",
    )


# --------------------------------------------------------------------------- through the API


class RemoteHost:
    """The host ``plugbay run`` serves on this state directory, asked through its API."""

    def __init__(self, client: HostClient, state: Path) -> None:
        self.client = client
        self.state = state
        self.source = f"host pid {client.pid}"

    def plugins(self) -> Listing:
        rows = [list_row(r, self.source) for r in self.client.plugins()]
        for row in rows:  # the summary has the reason; the error object is in the detail
            if row["state"] in ("failed", "restarting"):
                row["error"] = self.client.info(row["id"]).get("error")
        return Listing(rows, footer=f"from the running host at {self.client.url} ({self.source})")

    def info(self, plugin_id: str) -> dict[str, Any]:
        return self.client.info(plugin_id)

    def call(self, plugin_id: str, command: str, pairs: list[str]) -> Any:
        strings: frozenset[str] = frozenset()
        if pairs:  # text values stay text where the command takes a str
            for c in self.client.info(plugin_id)["commands"]:
                if c["name"] == command:
                    props = c["params_schema"].get("properties", {})
                    strings = frozenset(k for k, v in props.items() if v.get("type") == "string")
        return self.client.call(plugin_id, command, parse_params(pairs, None, strings))

    def call_many(self, plugin_id: str, command: str, params: list[dict[str, Any]]) -> list[Any]:
        return self.client.call_many(plugin_id, command, params)

    def metrics(self) -> str:
        from plugbay.web.client import running_host

        scraped = _scrape_metrics(running_host(self.state), self.state, fallback="asking its API")
        return scraped if scraped is not None else self.client.metrics()

    def reload(self, plugin_id: str) -> dict[str, Any]:
        before = self.client.info(plugin_id)["version"]
        return _swap(plugin_id, before, self.client.reload(plugin_id)["plugin"])

    def load(self, plugin_id: str) -> dict[str, Any]:
        # one added to its plugin directories since it started is found by the load itself
        with contextlib.suppress(PluginNotFound):
            now = self.client.info(plugin_id)
            if now["state"] == "active":
                return {
                    "id": plugin_id,
                    "version": now["version"],
                    "state": "active",
                    "started": [],
                }
        done = self.client.load(plugin_id)
        plugin = done["plugin"]
        return {
            "id": plugin_id,
            "version": plugin["version"],
            "state": plugin["state"],
            "started": done["affected"],
        }

    def unload(self, plugin_id: str, *, cascade: bool) -> dict[str, Any]:
        now = self.client.info(plugin_id)["state"]
        if now not in ("active", "initializing", "restarting"):  # a failed one: nothing runs
            return {"id": plugin_id, "state": now, "stopped": []}
        done = self.client.unload(plugin_id, cascade=cascade)
        return {"id": plugin_id, "state": done["plugin"]["state"], "stopped": done["affected"]}

    def rollback(
        self, plugin_id: str, to: str | None, *, with_dependents: bool = False
    ) -> dict[str, Any]:
        before = {p["id"]: p["version"] for p in self.client.plugins()}
        done = self.client.rollback(plugin_id, to, with_dependents=with_dependents)
        swap = _swap(plugin_id, before.get(plugin_id), done["plugin"])
        after = {p["id"]: p["version"] for p in self.client.plugins()} if with_dependents else {}
        return {**swap, "dependents": _moved(plugin_id, before, after)}

    def upgrade(
        self, plugin_id: str, version: str | None, *, with_dependents: bool, dry_run: bool
    ) -> Upgraded:
        answer = self.client.upgrade(
            plugin_id, version, with_dependents=with_dependents, dry_run=dry_run
        )
        moved = {pid: [step["from"], step["to"]] for pid, step in answer["moved"].items()}
        return moved, answer.get("passed_over"), answer.get("command_changes")

    def enable(self, plugin_id: str) -> str | None:
        return str(self.client.enable(plugin_id)["plugin"]["state"])

    def disable(self, plugin_id: str, reason: str | None, *, cascade: bool) -> list[str]:
        affected = self.client.disable(plugin_id, reason, cascade=cascade)["affected"]
        return [p for p in affected if p != plugin_id]

    def history(self, plugin_id: str | None, limit: int) -> list[dict[str, Any]]:
        return self.client.history(plugin_id, limit=limit)

    def snapshot(self) -> dict[str, Any]:
        return _recorded_snapshot(self.state)

    def readiness(self) -> dict[str, Any] | None:
        """The host's ``/readyz`` (starting, ready, degraded, stopping, with progress);
        None when it does not answer."""
        try:
            return self.client.readiness()
        except PlugbayError:
            return None

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)


# --------------------------------------------------------------------------- in this process


class LocalHost:
    """A host started in this process, on first need, for this command.

    When a host serves the state directory without an API (``running``: a ``plugbay
    run --no-http``, or an application's ``Host`` holding its lock), nothing is started:
    what that host recorded is shown, and what would change plugins is refused, since
    two hosts would fight over one state directory.
    """

    def __init__(self, kwargs: dict[str, Any], running: dict[str, Any] | None) -> None:
        self.kwargs = kwargs
        self.state: Path = kwargs["state_dir"]
        self.running = running
        self._runner: asyncio.Runner | None = None
        self._host: Host | None = None
        self._ticked = False

    def close(self) -> None:
        if self._runner is None:
            return
        try:
            if self._host is not None:
                self._runner.run(self._host.stop())
        finally:
            self._runner.close()

    def _do(self, body: Callable[[Host], Coroutine[Any, Any, T]]) -> T:
        if self._runner is None:
            from plugbay.runtime.host import Host

            async def start() -> Host:
                host = Host(**self.kwargs)
                await host.start()
                return host

            self._runner = asyncio.Runner()
            self._host = self._runner.run(start())
        assert self._host is not None
        return self._runner.run(body(self._host))

    def _refuse_running(self, what: str) -> None:
        if self.running is not None:
            raise refusal(self.running, self.state, what)

    def plugins(self) -> Listing:
        if self.running is None:
            return self._on_disk()
        from plugbay.cli._recorded import recorded

        source = f"host pid {self.running['pid']}"
        rows = [
            list_row(r, source) for r in recorded(self.state, self.running, self._recorded_dirs())
        ]
        since = time.strftime("%H:%M:%S", time.localtime(self.running["since"]))
        return Listing(
            rows,
            footer=f"as recorded by the host running since {since} (pid {self.running['pid']}), "
            "which serves no API",
        )

    def _recorded_dirs(self) -> list[Path]:
        """Where the plugins of the host serving no API are: its own plugin directories,
        unless --plugins names others."""
        assert self.running is not None
        dirs = [Path(d) for d in self.running.get("plugins", [])]
        if self.kwargs["plugins_dir"] != [Path("plugins")] or not dirs:
            dirs = self.kwargs["plugins_dir"]
        return dirs

    def _on_disk(self) -> Listing:
        """No host runs here: the plugins on disk, each "not running"; nothing is started."""
        from plugbay.cli.offline import disk_rows, say_no_host

        say_no_host(self.state)
        rows, problems = disk_rows(self.kwargs["plugins_dir"], self.state)
        return Listing([list_row(r, "disk") for r in rows], [str(p) for p in problems])

    def info(self, plugin_id: str) -> dict[str, Any]:
        if self.running is None:
            from plugbay.cli.offline import disk_info, say_no_host

            say_no_host(self.state)
            dirs = self.kwargs["plugins_dir"]
            return disk_info(plugin_id, dirs, self.state, self.kwargs["config_file"])
        return self._recorded_info(plugin_id)

    def _recorded_info(self, plugin_id: str) -> dict[str, Any]:
        """``info`` beside a host that serves no API (a second host here would be refused
        its lock): the plugin on disk, with the state, version, reason and load time that
        host recorded; what only it knows is absent, and a note says so."""
        from plugbay.cli._recorded import recorded
        from plugbay.cli.offline import disk_info

        assert self.running is not None
        dirs = self._recorded_dirs()
        data = disk_info(plugin_id, dirs, self.state, self.kwargs["config_file"])
        rows = recorded(self.state, self.running, dirs)
        row = next((r for r in rows if r["id"] == plugin_id), {})
        data.update({k: row[k] for k in ("state", "version", "reason", "load_seconds") if k in row})
        data["notes"] = [no_api(self.running, self.state)]
        data["source"] = f"host pid {self.running['pid']}"
        return data

    def call(self, plugin_id: str, command: str, pairs: list[str]) -> Any:
        async def body(host: Host) -> Any:
            await host.manager.activation.ensure(plugin_id)  # it may start on demand
            spec = host.manager.command_spec(plugin_id, command)
            return await host.call_with(plugin_id, command, parse_params(pairs, spec), strict=False)

        return self._do(body)

    def call_many(self, plugin_id: str, command: str, params: list[dict[str, Any]]) -> list[Any]:
        async def body(host: Host) -> list[Any]:
            await host.manager.activation.ensure(plugin_id)  # it may start on demand
            return await host.call_many(plugin_id, command, params, strict=False)

        return self._do(body)

    def metrics(self) -> str:
        scraped = _scrape_metrics(self.running, self.state, fallback="starting a host here instead")
        if scraped is not None:
            return scraped

        async def body(host: Host) -> bytes:
            return bytes(host.render_metrics())

        return self._do(body).decode()

    def reload(self, plugin_id: str) -> dict[str, Any]:
        self._refuse_running("reload")

        async def body(host: Host) -> dict[str, Any]:
            before = host.plugin(plugin_id).version
            rec = await host.reload(plugin_id)
            return _swap(plugin_id, before, _summary(rec))

        return self._do(body)

    def load(self, plugin_id: str) -> dict[str, Any]:
        raise self._not_served(
            "load",
            "'plugbay run' starts every plugin; 'plugbay call ID COMMAND' starts only it "
            "and what it needs, for that call",
        )

    def unload(self, plugin_id: str, *, cascade: bool) -> dict[str, Any]:
        raise self._not_served(
            "unload",
            f"nothing runs, so nothing is stopped; 'plugbay disable {plugin_id}' keeps it "
            "from starting with the next host",
        )

    def _not_served(self, what: str, then: str) -> PlugbayError:
        """load and unload act on a running host's plugins: none is started for them."""
        if self.running is not None:
            return PlugbayError(
                f"a host (pid {self.running['pid']}) serves {self.state.resolve()} without an "
                f"API; '{what}' acts on a running host's plugins through its API",
                hint="restart it without --no-http (or, an application's Host: "
                f"host.{what}(ID)), then run the command again",
            )
        return PlugbayError(
            f"no host is running on {self.state.resolve()}: '{what}' starts or stops a plugin "
            "in a running host, and none is started for it",
            hint=then,
        )

    def rollback(
        self, plugin_id: str, to: str | None, *, with_dependents: bool = False
    ) -> dict[str, Any]:
        self._refuse_running("rollback")

        async def body(host: Host) -> dict[str, Any]:
            before = {r.id: r.version for r in host.plugins()}
            rec = await host.manager.rollback_plugin(plugin_id, to, with_dependents=with_dependents)
            after = {r.id: r.version for r in host.plugins()}
            swap = _swap(plugin_id, before.get(plugin_id), _summary(rec))
            return {**swap, "dependents": _moved(plugin_id, before, after)}

        return self._do(body)

    def upgrade(
        self, plugin_id: str, version: str | None, *, with_dependents: bool, dry_run: bool
    ) -> Upgraded:
        self._refuse_running("upgrade")

        async def body(host: Host) -> Upgraded:
            if dry_run:
                plan = host.manager.upgrade_plan(
                    plugin_id, version, with_dependents=with_dependents
                )
            else:
                plan = await host.upgrade(plugin_id, version, with_dependents=with_dependents)
            moved = {pid: [step["from"], step["to"]] for pid, step in plan.to_dict().items()}
            return moved, plan.passed_over, None if dry_run else plan.command_changes

        return self._do(body)

    def enable(self, plugin_id: str) -> str | None:
        from plugbay.cli.offline import check_switch

        check_switch(plugin_id, self.kwargs["plugins_dir"], self.state, enable=True)
        with self._store() as store:  # kept for the next start; no host needed for that
            store.set_enabled(plugin_id, True)
            store.add_event(plugin_id, "enable")
        return None

    def disable(self, plugin_id: str, reason: str | None, *, cascade: bool) -> list[str]:
        from plugbay.cli.offline import check_switch

        needed = check_switch(plugin_id, self.kwargs["plugins_dir"], self.state, enable=False)
        if needed and not cascade:  # what a running host refuses too
            raise PlugbayError(
                f"cannot be disabled: {', '.join(needed)} depend on it and would not start",
                plugin=plugin_id,
                hint="disable those first, or pass --cascade to disable it all the same",
            )
        with self._store() as store:
            # disabled again with no reason: the reason it was disabled for stays
            kept = reason or store.disabled().get(plugin_id)
            store.set_enabled(plugin_id, False, kept or "disabled by the operator")
            by = "plugbay disable (no host serving its API)"
            store.add_event(plugin_id, "disable", reason=reason, details={"by": by})
        if needed:
            err.print(f"note: {', '.join(needed)} will not start while it is disabled")
        return []

    def history(self, plugin_id: str | None, limit: int) -> list[dict[str, Any]]:
        from plugbay.state import StateStore

        if self.running is None:
            from plugbay.cli.offline import say_no_host

            say_no_host(self.state)
        # read-only: it works after a crash and on a read-only disk, and changes nothing
        with StateStore.open(self.state, read_only=True) as store:
            return [to_builtins(e) for e in store.history(plugin_id, limit=limit)]

    def snapshot(self) -> dict[str, Any]:
        if self.running is not None:
            return _recorded_snapshot(self.state)
        # nothing serves: the plugins on disk, none of them running, and the host failing
        rows = self._on_disk().rows
        return {
            "time": None,
            "host": {"kind": "host", "health": "failing", "reason": "no host is running"},
            "plugins": [{**r, "health": None} for r in rows],
        }

    def readiness(self) -> dict[str, Any] | None:
        """Nothing to ask: a host without an API, or none at all (see :meth:`snapshot`)."""
        return None

    def wait(self, seconds: float) -> None:
        if self._runner is None:
            time.sleep(seconds)
        else:  # the host's own tasks (monitoring, workers) go on meanwhile
            self._runner.run(asyncio.sleep(seconds))

    def _store(self) -> Any:
        from plugbay.state import StateStore

        return StateStore.open(self.state)


# --------------------------------------------------------------------------- shared


def _summary(rec: Any) -> dict[str, Any]:
    return {"version": rec.version, "state": str(rec.state), "load_seconds": rec.load_seconds}


def _swap(plugin_id: str, before: str | None, after: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": plugin_id,
        "from": before,
        "to": after["version"],
        "state": after["state"],
        "seconds": after["load_seconds"],
    }


def _moved(
    plugin_id: str, before: dict[str, str | None], after: dict[str, str | None]
) -> dict[str, dict[str, str | None]]:
    """Each other plugin whose version changed: ``{id: {"from", "to"}}``."""
    return {
        pid: {"from": before.get(pid), "to": version}
        for pid, version in after.items()
        if pid != plugin_id and version != before.get(pid)
    }


def _recorded_snapshot(state: Path) -> dict[str, Any]:
    """What the running host writes to the state every tick (``plugbay top``'s figures)."""
    from plugbay.cli.views import StateSource

    source = StateSource(state)
    try:
        return source.snapshot()
    finally:
        source.close()


def _scrape_metrics(running: dict[str, Any] | None, state: Path, *, fallback: str) -> str | None:
    """The running host's own /metrics port, when it serves one and answers (with the
    state directory's API token: the port asks for it unless run ``--metrics-public``)."""
    port = running.get("metrics_port") if running else None
    if not port:
        return None
    import urllib.request

    from plugbay.web.token import TokenFile

    request = urllib.request.Request(f"http://127.0.0.1:{int(port)}/metrics")
    with contextlib.suppress(OSError):
        request.add_header("Authorization", f"Bearer {TokenFile(state).read()}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return str(r.read().decode())
    except OSError as exc:
        err.print(f"[yellow]warning:[/] the running host's /metrics did not answer ({exc}); "
                  f"{fallback}")  # fmt: skip
        return None
