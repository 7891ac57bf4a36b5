"""A Wasm module that traps as it starts is a plugin that could not be started.

Its start is everything ``initialize`` runs of it: instantiation (a ``start``
function), ``_initialize`` and ``plugbay_init``. A trap there is answered as a Python
plugin whose constructor or ``initialize`` raises: ``plugin_init_failed``, naming the
module and the trap. A trap in a command stays ``plugin_crashed`` (its instance is
replaced), and memory running out stays ``resource_limit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from plugbay.api.errors import PlugbayError, PluginCrashed, PluginInitError
from plugbay.isolation._wasm_traps import trap_text
from plugbay.model.manifest import PluginManifest

__all__ = ["start_traps"]


@contextlib.contextmanager
def start_traps(manifest: PluginManifest) -> Iterator[None]:
    """Around a Wasm plugin's start: its trap becomes ``plugin_init_failed``."""
    try:
        yield
    except PluginCrashed as exc:
        trap = exc.details.get("trap") if isinstance(exc.details, dict) else None
        if trap is None:  # not a trap (it broke the ABI): as it was
            raise
        raise _start_trapped(manifest, str(trap)) from None
    except PlugbayError:
        raise
    except Exception as exc:
        import wasmtime  # a start function's trap comes out of instantiation as it is

        if not isinstance(exc, wasmtime.Trap):
            raise
        raise _start_trapped(manifest, trap_text(exc)) from None


def _start_trapped(manifest: PluginManifest, trap: str) -> PluginInitError:
    declared = manifest.wasm
    root = manifest.root or (manifest.path.parent if manifest.path else None)
    module = Path(declared.module) if declared is not None else None
    where = str(root / module) if root is not None and module is not None else None
    name = module.name if module is not None else "its module"
    return PluginInitError(
        f"{name} trapped as it started: {trap}",
        plugin=manifest.id,
        where=where or manifest.location,
        hint="a trap is a bug in the module: fix what its start runs (its start function, "
        "_initialize, plugbay_init), rebuild it with 'plugbay build' and load it again",
        details={"trap": trap},
    )
