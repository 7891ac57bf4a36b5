"""State handover across a reload: ``export_state()`` on the old instance,
``import_state(state)`` on the new one.

The same two functions run in the host (inline plugins) and in a worker
(sandboxed ones), so a plugin behaves alike whatever its backend. The state is
typed by ``import_state``'s annotation: what arrives as plain data (from a
worker, or from the store when rolling back) is converted to that type first.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import msgspec

from plugbay.api import Plugin

__all__ = ["export_state", "import_state", "plain_state"]


async def export_state(plugin: Plugin) -> tuple[bool, Any]:
    """``(True, state)`` when the plugin implements ``export_state``, else ``(False, None)``."""
    exporter = getattr(plugin, "export_state", None)
    if exporter is None:
        return False, None
    state = exporter()
    if inspect.isawaitable(state):
        state = await state
    return True, state


async def import_state(plugin: Plugin, state: Any) -> bool:
    """Give ``state`` to the plugin's ``import_state``, converted to its annotated type.
    ``False`` when the plugin does not implement it."""
    importer = getattr(plugin, "import_state", None)
    if importer is None:
        return False
    wanted = _annotation(importer)
    if wanted is not None:
        state = msgspec.convert(state, wanted, strict=False, from_attributes=True)
    result = importer(state)
    if inspect.isawaitable(result):
        await result
    return True


def plain_state(state: Any) -> Any:
    """The state as plain data (for a frame, or the store's JSON file)."""
    return msgspec.to_builtins(state, str_keys=True)


def _annotation(importer: Any) -> Any:
    try:
        hints = typing.get_type_hints(importer)
    except Exception:  # an annotation that does not evaluate: take the state as it comes
        return None
    params = list(inspect.signature(importer).parameters.values())
    if not params:
        return None
    hint = hints.get(params[0].name)
    return None if hint is None or hint is Any else hint
