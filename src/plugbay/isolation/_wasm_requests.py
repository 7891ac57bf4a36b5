"""A Wasm module's requests that need nothing of its handle but what they name: its
storage (``plugbay.storage``), and the shape of a refusal. The handle
(``isolation.wasm``) answers them for the plugin whose instance asked, never for
what a request says."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugbay.api import Storage
from plugbay.api.errors import PlugbayError, ResourceLimitExceeded

if TYPE_CHECKING:
    from plugbay.api import PluginContext
    from plugbay.isolation.policy import Placement

__all__ = ["bounded_storage", "fail", "over_host_call_rate", "storage_request"]


def fail(message: str, kind: str = "PlugbayError") -> dict[str, Any]:
    """A refusal, as the module reads it: ``{"error": {"type", "message"}}``."""
    return {"error": {"type": kind, "message": message}}


def over_host_call_rate(plugin_id: str, per_second: float) -> ResourceLimitExceeded:
    """The host's refusal of a request over the plugin's host-call rate, in the broker's
    words for a worker's (the handle stamps it, so a module passing it on keeps it the
    host's)."""
    return ResourceLimitExceeded(
        f"over its bound of {per_second:g} host calls a second; the call was refused",
        plugin=plugin_id,
        hint=f'raise it in the host config: [policy.bounds.plugins."{plugin_id}"] '
        "(see docs/security.md)",
        details={"limit": "host_calls"},
    )


def bounded_storage(context: PluginContext, placement: Placement | None) -> Storage:
    """The plugin's store, held within its storage quota: a module's store is kept in the
    host's process, on no image of the quota's size, so the store keeps to the quota itself
    (as a Ray plugin's kept store does) and a write past it is ``StorageFull``."""
    quota = placement.limits.get("storage") if placement is not None else None
    if quota is None:
        return context.storage
    context.storage.close()  # not used yet; closed should the host have opened it
    environment = context.environment
    store = Storage(environment.data_dir, plugin=environment.plugin_id, limit=int(quota))
    object.__setattr__(context, "storage", store)  # what the host's cleanup closes
    return store


def storage_request(storage: Storage | None, request: dict[str, Any]) -> Any:
    """``{"op": "get" | "set" | "delete" | "keys", "key", "value"}`` on the plugin's own
    store."""
    if storage is None:
        return fail("storage is not open yet")
    op, key = request.get("op"), request.get("key")
    try:
        if op == "keys":
            return {"ok": storage.keys(str(request.get("prefix", "")))}
        if not isinstance(key, str):
            return fail("a storage request names a key (a string)")
        if op == "get":
            return {"ok": storage.get(key, request.get("default"))}
        if op == "set":
            storage.set(key, request.get("value"))
            return {"ok": None}
        if op == "delete":
            return {"ok": storage.delete(key)}
    except PlugbayError as exc:
        return {"error": exc.to_dict()}
    return fail(f"storage has no operation {op!r} (get, set, delete, keys)")
