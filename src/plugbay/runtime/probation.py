"""Probation: after a swap, for a short window, the new version must prove itself.

Its ``health`` command (when it has one) must answer truthfully at the start and
through the window; a worker must stay alive. A version that fails is swapped
back by the swapper (:mod:`plugbay.runtime.swap`), which keeps the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from plugbay.api.errors import PlugbayError
from plugbay.isolation import CallTimeout, PluginHandle

__all__ = ["probation"]


async def probation(plugin_id: str, handle: PluginHandle, window: float) -> str | None:
    """The reason the new version failed its probation, or ``None`` if it passed.

    Its ``health`` command (when it has one) must answer truthfully at the start
    and through the window; a worker must stay alive. An inline plugin without a
    ``health`` command has nothing to probe and passes at once.
    """
    has_health = "health" in handle.commands
    is_worker = handle.isolated
    if window <= 0 or not (has_health or is_worker):
        return None
    crashes: list[PlugbayError] = []
    if is_worker:
        handle.on_crash = crashes.append
    end = time.monotonic() + window
    while True:
        if crashes:
            return f"its worker died: {crashes[0].message}"
        if has_health:
            reason = await _probe(plugin_id, handle, min(window, 5.0))
            if reason is not None:
                return reason
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        await asyncio.sleep(min(remaining, max(window / 4, 0.01)))
    return f"its worker died: {crashes[0].message}" if crashes else None


async def _probe(plugin_id: str, handle: PluginHandle, timeout: float) -> str | None:
    """Why one call of the ``health`` command says the version is unwell, or ``None``."""
    spec = handle.commands["health"]
    try:
        result = spec.validate_result(
            await handle.call(spec, spec.validate_params({}, plugin=plugin_id), timeout),
            plugin=plugin_id,
        )
    except CallTimeout:
        return f"its health probe did not answer within {timeout:g} s"
    except PlugbayError as exc:
        return f"its health probe failed: {exc.message}"
    except (Exception, SystemExit) as exc:
        return f"its health probe raised {type(exc).__name__}: {exc}"
    if isinstance(result, Mapping):
        ok = result.get("ok", result.get("healthy", True))
        status = str(result.get("status", "")).lower()
        if not ok or status in ("failing", "unhealthy", "down", "error"):
            return f"its health probe reported {dict(result)}"
        return None
    if result is False or result is None or (isinstance(result, str) and not result):
        return f"its health probe reported {result!r}"
    return None
