"""What a worker's death tells the operator when the host cannot see the cause itself.

An exit with :data:`~plugbay.isolation._start_memory.OUT_OF_MEMORY` is what the worker
gives when its memory limit ends it outside any call, and it then leaves a mark the
plugin cannot (``_memory_mark``); without that mark, past ``Load`` the exit is the
plugin's own ``os._exit(83)`` or memory used up after it loaded, and before ``Load``
the worker's start, its mark lost (:func:`exit_83`).
SIGABRT is a C library's ``abort()``, most often after an allocation that failed under
the memory limit (:func:`aborted`). A ``MemoryError`` as an unsandboxed worker imports
its plugin is memory, not a plain import error (:func:`unsandboxed_import`). A crash
record keeps the hint of a limit hit, as the caller's error does (:func:`crash_reason`).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from plugbay.api.errors import PlugbayError, PluginCrashed, PluginLoadError, ResourceLimitExceeded
from plugbay.isolation._start_memory import OUT_OF_MEMORY, set_where
from plugbay.isolation._start_memory import at_import as sandboxed_import
from plugbay.model.manifest import PluginManifest, parse_size
from plugbay.model.sizes import size_text

if TYPE_CHECKING:
    from plugbay.isolation.guard import Guard
    from plugbay.isolation.policy import Placement

__all__ = ["aborted", "at_import", "crash_reason", "crashed", "exit_83", "unsandboxed_import"]

_REPLACED = "; the worker is being replaced"


def exit_83(
    manifest: PluginManifest, placement: Placement | None, pid: int, past_load: bool
) -> PluginCrashed:
    """A worker that exited with ``OUT_OF_MEMORY`` but left no memory mark. Past ``Load``
    (the plugin's code may have run, and the worker holds no mark from then on) it is the
    plugin's own ``os._exit(83)`` or memory used up after it loaded, and the host cannot
    tell which; before ``Load`` no plugin code ran, so it is the worker's start running
    out of memory, its mark lost on the way."""
    details = {"pid": pid, "exit_code": OUT_OF_MEMORY}
    limit, where = _memory_limit(manifest, placement)
    memory = (
        f"its memory limit, {size_text(limit)} (set by {where})"
        if limit
        else "the machine's memory (it has no memory limit)"
    )
    raise_it = "raise the memory limit where it is set" if limit else "free memory"
    if not past_load:
        return PluginCrashed(
            f"its worker process exited with code {OUT_OF_MEMORY} before its plugin's code "
            "ran, so not by the plugin: a worker gives that code when its start runs out "
            f"of memory, here {memory}; the mark that tells the host so did not reach it",
            plugin=manifest.id,
            hint=f"{raise_it}; 'plugbay info {manifest.id}' and the host log say more{_REPLACED}",
            details=details,
        )
    return PluginCrashed(
        f"its worker process exited with code {OUT_OF_MEMORY} after its plugin loaded: "
        f"either the plugin's own code ended it (os._exit({OUT_OF_MEMORY}), say) or the "
        f"worker used up {memory} outside any call; the host cannot tell which",
        plugin=manifest.id,
        hint=f"look in the plugin's code for what exits with code {OUT_OF_MEMORY}; if it "
        f"holds much memory outside its calls, {raise_it}; 'plugbay info {manifest.id}' "
        f"and the host log say more{_REPLACED}",
        details=details,
    )


def aborted(manifest: PluginManifest, placement: Placement | None, pid: int) -> PluginCrashed:
    """A worker killed by SIGABRT: native code called ``abort()``; under a memory limit,
    most often after an allocation that failed under it."""
    details = {"pid": pid, "signal": "SIGABRT"}
    limit, where = _memory_limit(manifest, placement)
    told = "the host log may hold the worker's last output, naming the library"
    if not limit:
        return PluginCrashed(
            "its worker was killed by SIGABRT: native code in it (a C library or "
            "extension) called abort(), on a failed assertion or allocation",
            plugin=manifest.id,
            hint=f"{told}; 'plugbay info {manifest.id}' shows the plugin's state{_REPLACED}",
            details=details,
        )
    return PluginCrashed(
        "its worker was killed by SIGABRT: native code in it (a C library or extension) "
        "called abort(), which most often follows an allocation that failed under its "
        f"memory limit, {size_text(limit)} (set by {where})",
        plugin=manifest.id,
        hint="raise the memory limit where it is set if the plugin's native code needs "
        f"more; else {told}{_REPLACED}",
        details=details,
    )


def crashed(
    manifest: PluginManifest,
    placement: Placement | None,
    pid: int,
    code: int,
    marked: bool,
    past_load: bool,
) -> PluginCrashed:
    """What a worker\x27s exit (``os.waitstatus_to_exitcode``) that hit no limit the host saw
    tells its callers: SIGABRT in these words (:func:`aborted`), ``OUT_OF_MEMORY`` without
    the memory mark (``marked``) by whether the host had sent ``Load`` (``past_load``,
    :func:`exit_83`), any other as it is."""
    if code == -signal.SIGABRT:
        return aborted(manifest, placement, pid)
    if code == OUT_OF_MEMORY and not marked:
        return exit_83(manifest, placement, pid, past_load)
    # the host\x27s module, imported here: a worker (which imports this one) never needs it
    from plugbay.isolation._process_parts import crash_error

    return crash_error(manifest.id, pid, code)


def at_import(
    error: PlugbayError, plugin_id: str, guard: Guard | None, manifest: PluginManifest | None
) -> PlugbayError:
    """The import error a worker reports: in a sandboxed worker, its memory limit when a
    ``MemoryError`` caused it (``_start_memory.at_import``); in an unsandboxed one, memory
    too (:func:`unsandboxed_import`); any other as it is."""
    if guard is not None:
        return sandboxed_import(error, plugin_id, guard)
    return unsandboxed_import(error, manifest)


def _memory_limit(
    manifest: PluginManifest, placement: Placement | None
) -> tuple[float | None, str]:
    """The memory limit a worker runs under and where it was set: a sandboxed worker's
    placement's; an unsandboxed worker's, its manifest's own (``worker_request``)."""
    if placement is not None and placement.sandboxed:
        return placement.limits.get("memory"), set_where(placement)
    asked = manifest.resources.memory
    limit = parse_size(asked, where="resources.memory") if asked else None
    return limit, f"its manifest's [resources] memory = {asked!r}"


def unsandboxed_import(error: PlugbayError, manifest: PluginManifest | None) -> PlugbayError:
    """In an unsandboxed worker, the import error whose cause is a ``MemoryError``: memory,
    with what bounds it there; any other as it is."""
    if manifest is None or not isinstance(error.__context__, MemoryError):
        return error
    return PluginLoadError(
        f"importing '{manifest.module}' ran out of memory (MemoryError): its worker is not "
        "sandboxed, so what bounds its memory is its manifest's [resources] memory (an "
        "address-space limit"
        + (f", {manifest.resources.memory!r}" if manifest.resources.memory else ", not set")
        + ") and what the machine has free",
        plugin=error.plugin,
        where=error.where,
        hint=("raise [resources] memory in its manifest, " if manifest.resources.memory else "")
        + "free memory on the machine, or have the plugin allocate less at import; "
        f"'plugbay info {manifest.id} --traceback' shows where",
        details=dict(error.details),
    )


def crash_reason(error: PlugbayError) -> str:
    """What a crash record says of the crash: a limit hit (or a native abort, most often
    one) with what to do, as its caller's error says; any other crash by its message."""
    limit = isinstance(error, ResourceLimitExceeded) or error.details.get("signal") == "SIGABRT"
    if limit and error.hint:
        return f"{error.message}. {error.hint}"
    return error.message
