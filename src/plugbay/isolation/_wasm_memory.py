"""What a Wasm instance that ran out of linear memory is told: its limit, where it was set.

``[resources] memory`` caps an instance's linear memory (the store's limit). A module
runs out of it in two ways: a ``memory.grow`` past the cap fails and the module traps
(``WasmHandle._memory_error`` finds it), or its initial memory is already above the cap
and it cannot be instantiated at all (:func:`memory_at_start`). Either is said as the
process backend says its memory limit: the size, where it was set
(``_start_memory.set_where``) and what to raise.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from plugbay.api.errors import ResourceLimitExceeded
from plugbay.isolation._start_memory import set_where
from plugbay.model.manifest import PluginManifest
from plugbay.model.sizes import size_text

if TYPE_CHECKING:
    from plugbay.isolation.policy import Placement

__all__ = ["MEMORY_HINT", "limit_words", "memory_at_start"]

#: what to do about an instance that ran out of its memory limit
MEMORY_HINT: Final = (
    "raise the memory limit where it is set, or have the module allocate less; the "
    "instance is replaced"
)
#: wasmtime's words for a module whose initial memory is above the store's limit
_TOO_BIG: Final = re.compile(r"memory minimum size of (\d+) pages exceeds memory limits")
_PAGE: Final = 65536


def limit_words(limit: float | None, placement: Placement | None) -> str:
    """``its memory limit, 16 MiB (set by …)``, or that none was set."""
    if not limit:
        return "no memory limit"
    return f"its memory limit, {size_text(limit)} (set by {set_where(placement)})"


@contextlib.contextmanager
def memory_at_start(manifest: PluginManifest, placement: Placement | None) -> Iterator[None]:
    """Around a Wasm plugin's start: a module whose initial memory is above its limit is
    refused naming both, where the limit was set and what to raise."""
    try:
        yield
    except Exception as exc:
        found = _TOO_BIG.search(str(exc))
        limit = placement.limits.get("memory") if placement is not None else None
        if found is None or not limit:
            raise
        pages = int(found.group(1))
        raise ResourceLimitExceeded(
            f"its module's initial linear memory, {pages} pages "
            f"({size_text(pages * _PAGE)}), is above {limit_words(limit, placement)}, so "
            "it cannot be instantiated",
            plugin=manifest.id,
            where=manifest.location,
            hint="raise the memory limit where it is set, or build the module with less "
            'initial memory (cflags = ["-Wl,--initial-memory=BYTES"])',
            details={"limit": "memory", "initial_bytes": pages * _PAGE},
        ) from None
