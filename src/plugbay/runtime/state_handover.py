"""Moving what a plugin holds between versions, and across a host restart.

A swap takes the serving version's state (``export_state``) and gives it to the
new one (``import_state``), each bounded by the plugin's init timeout; a failed
probation carries it back. A stop keeps the state durably in the store for the
plugin's next start, which gives it back after ``initialize``. Every failure
names the step, the version and what to fix; the transport (in the host, or a
worker's frames) is the backend's (:mod:`plugbay.isolation.handover`).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

from plugbay.api.errors import PlugbayError
from plugbay.isolation import CallTimeout, PluginHandle, handover
from plugbay.isolation.base import deadline
from plugbay.isolation.loading import plugin_frame
from plugbay.model.manifest import PluginManifest
from plugbay.runtime.store import PluginStore

__all__ = ["carry_back", "hand_over", "keep_at_stop", "restore_at_start"]

log = logging.getLogger("plugbay.manager")


async def hand_over(
    new: PluginManifest,
    old: PluginHandle,
    handle: PluginHandle,
    state: tuple[bool, Any] | None,
    default_timeout: float,
) -> tuple[bool, Any]:
    """Move state from the old version to the new one (``state``: one kept earlier, used
    when the old version exports nothing); returns what the old exported (kept in the
    store so a rollback can restore it)."""
    asked = new.resources.init_timeout
    timeout = asked if asked is not None and asked > 0 else default_timeout
    exported = await _export(old, timeout)
    # what the serving version holds now wins over a state kept earlier (rollback):
    # the kept one is used only when the serving version exports nothing
    given = exported if exported[0] or state is None else state
    if given[0]:
        await _import(new, handle, given[1], timeout)
    return exported


async def _export(old: PluginHandle, timeout: float) -> tuple[bool, Any]:
    """The serving version's ``export_state``, bounded; its failure refuses the swap."""
    try:
        async with deadline(timeout):
            return await old.export_state(timeout)
    except CallTimeout:
        raise PlugbayError(
            f"export_state did not finish within {timeout:g} s",
            where=old.manifest.location,
            hint="make export_state return promptly",
        ) from None
    except PlugbayError as exc:
        raise PlugbayError(
            f"export_state of {old.manifest.version} {_failed(exc)}",
            where=exc.where or old.manifest.location,
            hint="fix export_state; the old version keeps serving meanwhile",
            details=exc.details,
        ) from None
    except Exception as exc:
        raise PlugbayError(
            f"export_state of {old.manifest.version} raised {type(exc).__name__}: {exc}",
            where=plugin_frame(exc, old.manifest) or old.manifest.location,
            hint="fix export_state; the old version keeps serving meanwhile",
            details={"traceback": "".join(traceback.format_exception(exc))},
        ) from None


async def _import(new: PluginManifest, handle: PluginHandle, state: Any, timeout: float) -> None:
    """The new version's ``import_state``, bounded; its failure refuses the swap."""
    try:
        async with deadline(timeout):
            await handle.import_state(state, timeout)
    except CallTimeout:
        raise PlugbayError(
            f"import_state did not finish within {timeout:g} s",
            where=new.location,
            hint="make import_state return promptly",
        ) from None
    except PlugbayError as exc:
        raise PlugbayError(
            f"import_state of {new.version} {_failed(exc)}",
            where=exc.where or new.location,
            hint="make import_state accept what export_state gives",
            details=exc.details,
        ) from None
    except Exception as exc:
        raise PlugbayError(
            f"import_state of {new.version} raised {type(exc).__name__}: {exc}",
            where=plugin_frame(exc, new) or new.location,
            hint="make import_state accept what export_state gives",
            details={"traceback": "".join(traceback.format_exception(exc))},
        ) from None


async def carry_back(new: PluginHandle, old: PluginHandle, timeout: float) -> str | None:
    """A failed probation: hand what the new version acknowledged back to the old one.
    Returns what could not be carried, or ``None``."""
    try:
        async with deadline(timeout):
            exported = await new.export_state(timeout)
            if exported[0]:
                await old.import_state(exported[1], timeout)
    except (Exception, SystemExit) as exc:  # a dead worker, a refusing import_state
        text = exc.message if isinstance(exc, PlugbayError) else f"{type(exc).__name__}: {exc}"
        log.error(
            "plugin '%s': the state of %s could not be carried back to %s: %s",
            new.manifest.id, new.manifest.version, old.manifest.version, text,
        )  # fmt: skip
        return f"its state could not be carried back ({text})"
    return None


async def keep_at_stop(
    store: PluginStore | None, timeout: float, plugin_id: str, handle: PluginHandle
) -> str | None:
    """Before a stop cleans a plugin up: what it holds (``export_state``), kept
    durably for its next start, so a host restart loses nothing it acknowledged.
    Returns what went wrong (the stop goes on), or ``None``."""
    if store is None:
        return None
    try:
        async with deadline(timeout):
            exported = await handle.export_state(timeout)
        if exported[0]:
            state = handover.plain_state(exported[1])
            await asyncio.to_thread(store.save_handover, plugin_id, handle.manifest.version, state)
    except (Exception, SystemExit) as exc:  # a dead worker, a full disk, a refusal
        problem = (
            f"its state could not be kept for its next start: "
            f"{exc.message if isinstance(exc, PlugbayError) else type(exc).__name__}"
            f"{'' if isinstance(exc, PlugbayError) else f': {exc}'}"
        )
        log.error("plugin '%s': %s", plugin_id, problem)
        return problem
    return None


async def restore_at_start(
    store: PluginStore | None, timeout: float, plugin_id: str, handle: PluginHandle
) -> None:
    """After ``initialize``: give the plugin what it held when it was last stopped.
    A failure fails the start, and the kept state stays for the next attempt."""
    if store is None:
        return
    found, state, version = store.load_handover(plugin_id)
    if not found:
        return
    where = str(store.handover_file(plugin_id))
    try:
        async with deadline(timeout):
            await handle.import_state(state, timeout)
    except CallTimeout:
        raise PlugbayError(
            f"import_state of the state kept at its last stop did not finish within {timeout:g} s",
            plugin=plugin_id,
            where=where,
            hint="make import_state return promptly; the kept state stays for the next start",
        ) from None
    except (Exception, SystemExit) as exc:
        text = _failed(exc) if isinstance(exc, PlugbayError) else (
            f"raised {type(exc).__name__}: {exc}"
        )  # fmt: skip
        raise PlugbayError(
            f"import_state of the state {version} kept at its last stop {text}",
            plugin=plugin_id,
            where=where,
            hint="make import_state accept what export_state gave; the kept state stays "
            "for the next start",
        ) from None
    store.drop_handover(plugin_id)


def _failed(exc: PlugbayError) -> str:
    """How a worker's lifecycle step failed: the plugin raised, or the worker broke."""
    return f"raised {exc.message}" if "exception" in exc.details else f"failed: {exc.message}"
