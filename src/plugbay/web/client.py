"""Talk to a running host through its HTTP API.

``plugbay run`` records where it serves in ``<state>/host.json`` and keeps its
API token in ``<state>/api-token`` (mode 0600). :func:`connect` reads both, so
any process of the same user on the same machine finds the host of a state
directory::

    client = connect(".plugbay")          # None when no host serves it
    if client is not None:
        print(client.plugins())
        print(client.call("extension.processor", "respond", {"text": "I am sad"}))

Every failure is a :class:`~plugbay.api.errors.PlugbayError`: the host's own error,
re-created from its JSON (same message, where, hint), or one saying the host
cannot be reached and what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx

from plugbay.api.errors import DependentsError, PlugbayError, error_from_dict

__all__ = ["HOST_FILE", "HostClient", "connect", "running_host"]

HOST_FILE: Final = "host.json"


def running_host(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What ``plugbay run`` recorded about itself in this state directory, if it is alive
    and serves this very directory: a copy of a state directory (``cp -a``, a backup
    restored beside it) carries the host.json of the host serving the original, which
    must not be taken for the copy's."""
    from plugbay.runtime.lifecycle import directory_identity

    try:
        data = json.loads((Path(state_dir) / HOST_FILE).read_text())
        pid = int(data["pid"])
        served = data.get("state")  # absent: announced by a plugbay before 2026-12
        if served is not None and list(served) != directory_identity(state_dir):
            return None
        os.kill(pid, 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"plugbay" not in f.read():
                return None  # a stale file, and the pid went to someone else
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(data)


def connect(state_dir: str | os.PathLike[str], *, timeout: float = 60.0) -> HostClient | None:
    """A client for the host serving ``state_dir``, or None when none serves its API."""
    running = running_host(state_dir)
    if running is None or not running.get("http"):
        return None
    from plugbay.web.token import TokenFile

    try:
        token = TokenFile(Path(state_dir)).read()
    except FileNotFoundError:
        return None
    return HostClient(str(running["http"]), token, pid=int(running["pid"]), timeout=timeout)


class HostClient:
    """A synchronous client of one host's API (httpx). See the module docstring."""

    def __init__(
        self, url: str, token: str, *, pid: int | None = None, timeout: float = 60.0
    ) -> None:
        self.url = url.rstrip("/")
        self.pid = pid
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "plugbay-client"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HostClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ the API

    def plugins(self) -> list[dict[str, Any]]:
        """Every plugin: id, version, type, state, isolation, uptime, load time, reason."""
        return self._json("GET", "/api/v1/plugins")  # type: ignore[no-any-return]

    def info(self, plugin_id: str) -> dict[str, Any]:
        """Manifest, state, commands with their JSON schemas, dependencies, grants, usage…"""
        return self._json("GET", f"/api/v1/plugins/{plugin_id}")  # type: ignore[no-any-return]

    def call(self, plugin_id: str, command: str, params: dict[str, Any] | None = None) -> Any:
        """Run a command; parameters are checked against its types by the host."""
        return self._json("POST", f"/api/v1/plugins/{plugin_id}/commands/{command}", params or {})[
            "result"
        ]

    def call_many(self, plugin_id: str, command: str, params: list[dict[str, Any]]) -> list[Any]:
        """Run a command once per parameter set in one request (``…/batch``): each item
        is that call's value or the :class:`PlugbayError` it failed with, in order."""
        answers = self._json(
            "POST", f"/api/v1/plugins/{plugin_id}/commands/{command}/batch", {"params": params}
        )["results"]
        return [error_from_dict(a["error"]) if "error" in a else a["result"] for a in answers]

    def reload(self, plugin_id: str) -> dict[str, Any]:
        return self._op(plugin_id, "reload")

    def rollback(
        self, plugin_id: str, to: str | None = None, *, with_dependents: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"to": to} if to else {}
        if with_dependents:
            body["with_dependents"] = True
        return self._op(plugin_id, "rollback", body or None)

    def upgrade(
        self,
        plugin_id: str,
        version: str | None = None,
        *,
        with_dependents: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        body = {"version": version, "with_dependents": with_dependents, "dry_run": dry_run}
        return self._op(plugin_id, "upgrade", body)

    def load(self, plugin_id: str) -> dict[str, Any]:
        return self._op(plugin_id, "load")

    def unload(self, plugin_id: str, *, cascade: bool = False) -> dict[str, Any]:
        return self._op(plugin_id, "unload", {"cascade": cascade})

    def enable(self, plugin_id: str) -> dict[str, Any]:
        return self._op(plugin_id, "enable")

    def disable(
        self, plugin_id: str, reason: str | None = None, *, cascade: bool = False
    ) -> dict[str, Any]:
        return self._op(plugin_id, "disable", {"reason": reason, "cascade": cascade})

    def config(self, plugin_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/plugins/{plugin_id}/config")  # type: ignore[no-any-return]

    def set_config(self, plugin_id: str, values: dict[str, Any]) -> dict[str, Any]:
        return self._json(  # type: ignore[no-any-return]
            "PUT", f"/api/v1/plugins/{plugin_id}/config", {"values": values}
        )

    def history(self, plugin_id: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if plugin_id is not None:
            params["plugin"] = plugin_id
        return self._json("GET", "/api/v1/history", params=params)  # type: ignore[no-any-return]

    def logs(
        self, plugin_id: str | None = None, *, level: str = "debug", limit: int = 100
    ) -> list[dict[str, Any]]:
        """The newest log records (oldest first), at ``level`` or above."""
        params: dict[str, Any] = {"level": level, "limit": limit}
        if plugin_id is not None:
            params["plugin"] = plugin_id
        return self._json("GET", "/api/v1/logs", params=params)  # type: ignore[no-any-return]

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/api/v1/health")  # type: ignore[no-any-return]

    def readiness(self) -> dict[str, Any]:
        """``/readyz``: ``{"ready", "status", "active", "wanted", "failed"}`` (503 is an
        answer here: starting or stopping)."""
        response = self._request("GET", "/readyz", ok=(503,))
        return response.json()  # type: ignore[no-any-return]

    def metrics(self) -> str:
        """Every plugin's metrics in the Prometheus text format."""
        return self._request("GET", "/metrics").text

    # ------------------------------------------------------------------ plumbing

    def nodes(self) -> dict[str, Any]:
        """Where plugins run: the cluster's nodes and the plugins on each (``runtime.nodes``)."""
        return self._json("GET", "/api/v1/nodes")  # type: ignore[no-any-return]

    def permissions(self) -> list[dict[str, Any]]:
        """Every plugin's ``{"id", "version", "state", "permissions"}`` (``plugbay grants``)."""
        return self._json("GET", "/api/v1/permissions")  # type: ignore[no-any-return]

    def grant(self, plugin_id: str, permission: str) -> dict[str, Any]:
        """Grant and apply at once (the plugin's worker restarts under the new policy)."""
        return self._op(plugin_id, "grants", {"permission": permission})

    def revoke(self, plugin_id: str, permission: str) -> dict[str, Any]:
        return self._op(plugin_id, "revoke", {"permission": permission})

    def events(
        self, kinds: list[str] | None = None, *, max_events: int = 0
    ) -> Iterator[dict[str, Any]]:
        """The host's system events as they happen (``GET /api/v1/events``), each as
        ``{"event": "open" | "system" | "dropped", **data}``, until the host stops,
        ``max_events`` system events came, or the caller stops iterating."""
        params: dict[str, Any] = {"max_events": max_events}
        if kinds:
            params["kind"] = kinds
        try:
            with self._http.stream(
                "GET", "/api/v1/events", params=params, timeout=httpx.Timeout(10, read=None)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_of(response)
                yield from _server_sent(response.iter_lines())
        except httpx.HTTPError as exc:
            raise PlugbayError(
                f"the stream of events from {self.url} broke off: {exc}",
                hint="is 'plugbay run' still running? follow it again once it is",
            ) from None

    def profile(self, plugin_id: str, seconds: float, interval: float) -> dict[str, Any]:
        """The serving process sampled for ``seconds`` (waits that long, and a margin)."""
        path = f"/api/v1/plugins/{plugin_id}/profile"
        params = {"seconds": seconds, "interval": interval}
        response = self._request("POST", path, params=params, timeout=seconds + 60.0)
        return response.json()["profile"]  # type: ignore[no-any-return]

    def uninstall(
        self, plugin_id: str, version: str | None = None, *, purge: bool = False
    ) -> dict[str, Any]:
        return self._op(plugin_id, "uninstall", {"version": version, "purge": purge})

    def env_gc(self, keep: Iterable[str]) -> dict[str, Any]:
        """The host removes the environments neither ``keep`` nor its plugins use."""
        body = {"keep": sorted(keep)}  # uv's cache clean takes its time
        response = self._request("POST", "/api/v1/environments/gc", body, timeout=360.0)
        return response.json()  # type: ignore[no-any-return]

    def _op(self, plugin_id: str, op: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/plugins/{plugin_id}/{op}", body)  # type: ignore[no-any-return]

    def _json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return self._request(method, path, body, params=params).json()

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (),
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method, path, json=body, params=params, timeout=timeout or self._http.timeout
            )
        except httpx.TimeoutException:
            raise PlugbayError(
                f"the host at {self.url} did not answer {method} {path} in time",
                hint="it may be busy or stuck; 'plugbay info' on a plugin, or its logs, say more",
            ) from None
        except httpx.HTTPError as exc:
            raise PlugbayError(
                f"cannot reach the host at {self.url}: {exc}",
                hint="is 'plugbay run' still running? it records its address in the state "
                "directory's host.json",
            ) from None
        if response.status_code >= 400 and response.status_code not in ok:
            raise _error_of(response)
        return response


def _server_sent(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """``{"event": name, **data}`` of each server-sent event whose data is a JSON object."""
    name = "message"
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data = json.loads(line[5:])
            if isinstance(data, dict):
                yield {"event": name, **data}
        elif not line:
            name = "message"


def _error_of(response: httpx.Response) -> PlugbayError:
    try:
        data = response.json()["error"]
        error = error_from_dict(data)
    except (ValueError, KeyError, TypeError):
        return PlugbayError(
            f"the host answered {response.status_code}: {response.text[:200]}",
            hint="this is not an answer plugbay's API gives; is something else on that port?",
        )
    if data.get("code") and data["code"] != error.code:
        error.code = data["code"]  # type: ignore[misc]
    error.details.setdefault("status", response.status_code)
    if isinstance(error, DependentsError):  # the cascade as this client's methods take it
        error.asked_through("python")
    return error
