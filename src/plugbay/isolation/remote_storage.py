"""``context.storage`` kept by the host, for a plugin on a Ray node.

A node has no share of the host's disks, and a plugin may move to another node
when its own is lost; so the store of a plugin placed on Ray is the host's
(its data directory, the same file the local backends use) and every operation
is a host call on the plugin's channel. The broker answers it (``plugbay.storage``)
in the name of the channel's plugin, within its host-call bounds, and the store
keeps its storage quota; a write that returned is on the host's disk.

:class:`HostStorage` (in the worker)
    The same API as :class:`plugbay.api.Storage`, synchronous as it is: values are
    encoded and decoded (and checked with ``type=``) in the worker; the host moves
    bytes. On the worker's loop thread (a command, async or not) the call blocks the
    loop for one round trip (``frames.Channel.round_trip``), as a local store blocks
    it for one synced write; from any other thread it waits on the loop.
:class:`KeptStores` (in the host)
    One open store per plugin placed on Ray with host-kept storage, counted by its
    instances (a reload runs two at once), bounded by its ``[resources] storage``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from plugbay.api import Storage
from plugbay.api._retired import Retired
from plugbay.api.errors import PlugbayError, PluginCrashed, error_from_dict
from plugbay.isolation import frames

__all__ = ["STORAGE_TARGET", "HostStorage", "KeptStores", "ask_through"]

#: the host-call target of storage operations (the broker routes it here)
STORAGE_TARGET: Final = "plugbay.storage"
#: seconds one storage operation may take, the round trip to the host included
_TIMEOUT: Final = 30.0

Ask = Callable[[str, dict[str, Any]], Any]


class HostStorage(Storage):
    """``context.storage`` of a worker whose store the host keeps (see the module)."""

    __slots__ = ("_ask",)

    def __init__(self, ask: Ask, data_dir: Path, *, plugin: str = "") -> None:
        super().__init__(data_dir, plugin=plugin)
        self._ask = ask

    def get(self, key: str, default: Any = None, *, type: Any = None) -> Any:
        data = self._ask("get", {"key": self._key(key)})
        if data is None:
            return default
        return self._decode(key, data, type)

    def set(self, key: str, value: Any) -> None:
        self._ask("set", {"key": self._key(key), "value": self._encode(key, value)})

    def delete(self, key: str) -> bool:
        return bool(self._ask("delete", {"key": self._key(key)}))

    def keys(self, prefix: str = "") -> list[str]:
        return list(self._ask("keys", {"prefix": str(prefix)}))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self._ask("has", {"key": self._key(key)}))

    def put_blob(self, name: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            super().put_blob(name, data)  # the same refusal as a local store's
        self._ask("put_blob", {"name": self._key(name), "data": bytes(data)})

    def get_blob(self, name: str) -> bytes | None:
        data = self._ask("get_blob", {"name": self._key(name)})
        return None if data is None else bytes(data)

    def delete_blob(self, name: str) -> bool:
        return bool(self._ask("delete_blob", {"name": self._key(name)}))

    def blobs(self, prefix: str = "") -> list[str]:
        return list(self._ask("blobs", {"prefix": str(prefix)}))

    def close(self) -> None:
        """Nothing is open here: the host closes its store when the plugin stops."""

    def retire(self, refusal: Retired) -> None:
        """Refuse every later use with ``refusal`` (``api._retired``): the host's store
        goes on serving the plugin's next instance, never this stopped one."""

        def refuse(_op: str, _params: dict[str, Any]) -> Any:
            raise refusal("context.storage")

        self._ask = refuse

    def __repr__(self) -> str:
        return f"HostStorage(kept by the host, plugin {self._plugin!r})"


def ask_through(
    channel: Callable[[], frames.Channel | None],
    fd: int,
    loop: asyncio.AbstractEventLoop,
    host_call: Callable[[str, str, dict[str, Any]], Any],
    next_id: Callable[[], int],
    plugin: str,
) -> Ask:
    """How a worker asks the host for one storage operation: from its loop's thread, a
    blocking round trip on the channel; from another thread, a host call on the loop."""
    loop_thread = threading.get_ident()

    def ask(op: str, params: dict[str, Any]) -> Any:
        if threading.get_ident() != loop_thread:
            future = asyncio.run_coroutine_threadsafe(host_call(STORAGE_TARGET, op, params), loop)
            try:
                return future.result(_TIMEOUT)
            except TimeoutError:
                future.cancel()
                raise _late(plugin) from None
        open_channel = channel()
        if open_channel is None:
            raise _gone(plugin, "the worker has no channel yet")
        call = frames.HostCall(next_id(), STORAGE_TARGET, op, params)
        try:
            reply = open_channel.round_trip(
                fd,
                call,
                frames.HostReply,
                lambda m: isinstance(m, frames.HostReply) and m.id == call.id,
                _TIMEOUT,
            )
        except BlockingIOError:
            raise PlugbayError(
                "storage: the channel to the host is full of frames still waiting to leave "
                "(a flood of logs or large results), so the store cannot be reached now",
                plugin=plugin or None,
                hint="try again, or use the store from a blocking command "
                "(@command(blocking=True)), which waits its turn",
            ) from None
        except (ConnectionError, OSError) as exc:
            raise _gone(plugin, str(exc)) from None
        except TimeoutError:
            raise _late(plugin) from None
        assert isinstance(reply, frames.HostReply)
        if reply.error is not None:
            raise error_from_dict(reply.error)
        return reply.value

    return ask


def _late(plugin: str) -> PlugbayError:
    return PlugbayError(
        f"storage: the host did not answer within {_TIMEOUT:g} s",
        plugin=plugin or None,
        hint="the host may be overloaded; what was written before is intact",
    )


def _gone(plugin: str, why: str) -> PluginCrashed:
    return PluginCrashed(
        f"storage: the host cannot be reached ({why})",
        plugin=plugin or None,
        hint="the host restarts the plugin; a write that returned is kept",
    )


class _Kept:
    __slots__ = ("instances", "store")

    def __init__(self, store: _RawStore) -> None:
        self.store = store
        self.instances = 0


class KeptStores:
    """The host's end: the stores it keeps for plugins on Ray, by plugin id."""

    def __init__(self) -> None:
        self._kept: dict[str, _Kept] = {}

    def attach(self, plugin: str, data_dir: Path, quota: int | None) -> None:
        """One more instance of ``plugin`` keeps its store here (opened on first use)."""
        kept = self._kept.get(plugin)
        if kept is None:
            kept = self._kept[plugin] = _Kept(_RawStore(data_dir, plugin=plugin, limit=quota))
        kept.instances += 1

    def detach(self, plugin: str) -> None:
        """One instance less; the last one closes the store."""
        kept = self._kept.get(plugin)
        if kept is None:
            return
        kept.instances -= 1
        if kept.instances <= 0:
            del self._kept[plugin]
            kept.store.close()

    def keeps(self, plugin: str) -> bool:
        return plugin in self._kept

    async def serve(self, plugin: str, op: str, params: dict[str, Any]) -> Any:
        """One operation of ``plugin``'s store (the broker checked who asks)."""
        kept = self._kept.get(plugin)
        if kept is None:
            raise PlugbayError(f"storage: no store is kept here for '{plugin}'", plugin=plugin)
        method = _OPERATIONS.get(op)
        if method is None:
            raise PlugbayError(f"storage: no operation '{op}'", plugin=plugin)
        try:
            return await asyncio.to_thread(method, kept.store, params)
        except (KeyError, TypeError, AttributeError) as exc:  # a malformed request
            raise PlugbayError(
                f"storage: a malformed '{op}' request ({type(exc).__name__}: {exc})",
                plugin=plugin,
                hint="use context.storage; its requests are made for you",
            ) from None

    def close(self) -> None:
        for kept in self._kept.values():
            kept.store.close()
        self._kept.clear()


class _RawStore(Storage):
    """The host's store for a remote plugin: bytes in, bytes out (the worker encodes)."""

    __slots__ = ()

    def __init__(self, data_dir: Path, *, plugin: str, limit: int | None) -> None:
        super().__init__(data_dir, plugin=plugin, limit=limit)

    def get_raw(self, params: dict[str, Any]) -> bytes | None:
        row = self._read("SELECT value FROM kv WHERE key = ?", (self._key(params["key"]),))
        return None if row is None else bytes(row)

    def set_raw(self, params: dict[str, Any]) -> None:
        value = params.get("value")
        if not isinstance(value, bytes):
            raise PlugbayError("storage: a value must arrive encoded", plugin=self._plugin)
        key = self._key(params["key"])
        self._write(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
            what=f"setting '{key}'",
        )

    def delete_raw(self, params: dict[str, Any]) -> bool:
        return self.delete(params["key"])

    def keys_raw(self, params: dict[str, Any]) -> list[str]:
        return self.keys(str(params.get("prefix", "")))

    def has_raw(self, params: dict[str, Any]) -> bool:
        return params.get("key") in self

    def put_blob_raw(self, params: dict[str, Any]) -> None:
        self.put_blob(params["name"], params["data"])

    def get_blob_raw(self, params: dict[str, Any]) -> bytes | None:
        return self.get_blob(params["name"])

    def delete_blob_raw(self, params: dict[str, Any]) -> bool:
        return self.delete_blob(params["name"])

    def blobs_raw(self, params: dict[str, Any]) -> list[str]:
        return self.blobs(str(params.get("prefix", "")))


_OPERATIONS: Final[dict[str, Callable[[_RawStore, dict[str, Any]], Any]]] = {
    "get": _RawStore.get_raw,
    "set": _RawStore.set_raw,
    "delete": _RawStore.delete_raw,
    "keys": _RawStore.keys_raw,
    "has": _RawStore.has_raw,
    "put_blob": _RawStore.put_blob_raw,
    "get_blob": _RawStore.get_blob_raw,
    "delete_blob": _RawStore.delete_blob_raw,
    "blobs": _RawStore.blobs_raw,
}
