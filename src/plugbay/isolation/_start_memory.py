"""A worker that ran out of memory outside any call, and the words the host gives it.

Under a memory limit too low for the worker itself, its start fails before a plugin
call could report it: the thread that forwards its output cannot map its stack
(``RLIMIT_AS``: CPython says only "can't start new thread"), the loop cannot map its
buffers (``OSError`` ``ENOMEM``), or Python raises ``MemoryError``. The worker then
exits with :data:`OUT_OF_MEMORY` (:func:`exit_code`), and the host names the limit,
where it was set and what to do (:func:`out_of_memory_words`), as it does for the
cgroup's OOM killer (:func:`set_where`). A ``MemoryError`` as the plugin's module is
imported is read as the memory limit too (:func:`at_import` in the worker,
:func:`at_load` in the host, which adds the limit and where it was set).
"""

from __future__ import annotations

import errno
import mmap
import resource
from typing import TYPE_CHECKING, Final

from plugbay.api.errors import PlugbayError, ResourceLimitExceeded
from plugbay.isolation.limit_sources import memory_set_by
from plugbay.model.manifest import PluginManifest
from plugbay.model.sizes import size_text

if TYPE_CHECKING:
    from plugbay.isolation.guard import Guard
    from plugbay.isolation.policy import Placement

__all__ = [
    "NO_STACK_WORDS",
    "OUT_OF_MEMORY",
    "at_call",
    "at_import",
    "at_load",
    "exit_code",
    "out_of_memory_words",
    "room_for_a_stack",
    "set_where",
]

#: the exit code of a worker whose memory limit ended it outside any call (none of
#: ``_child``'s 70 and 71, nor 1 for any other error)
OUT_OF_MEMORY: Final = 83
#: what a worker's thread stack takes when the stack limit says nothing (glibc's default)
_DEFAULT_STACK: Final = 8 << 20
#: why a thread a call started could not start under its memory limit (``guard.classify``)
NO_STACK_WORDS: Final = "no room was left in its address space for a new thread's stack"
#: how ``guard.classify`` words a call's memory limit hit (:func:`at_call` says more)
_CALL_HIT: Final = "the call hit its memory limit"


def exit_code(error: BaseException) -> int:
    """The worker's exit code after ``error`` ended its loop: :data:`OUT_OF_MEMORY` when
    it was its memory limit, 0 for an exit asked for, else 1."""
    if isinstance(error, (SystemExit, KeyboardInterrupt)):
        return 0
    if isinstance(error, MemoryError):
        return OUT_OF_MEMORY
    if isinstance(error, OSError) and error.errno == errno.ENOMEM:
        return OUT_OF_MEMORY
    if isinstance(error, RuntimeError) and str(error) == "can't start new thread":
        return OUT_OF_MEMORY if not room_for_a_stack() else 1  # else its thread limit
    return 1


def room_for_a_stack() -> bool:
    """Whether the address space still holds one thread's stack (a thread that could not
    start for want of one hit the memory limit, not the thread limit)."""
    try:
        mmap.mmap(-1, _stack_size()).close()
    except (OSError, MemoryError):
        return False
    return True


def _stack_size() -> int:
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    return soft if 0 < soft < (1 << 30) else _DEFAULT_STACK


def set_where(placement: Placement | None) -> str:
    """Where the plugin's memory limit came from, in the words of the file that set it,
    as the policy recorded it when it placed the plugin (``Placement.sources``)."""
    return memory_set_by(placement.sources.get("memory") if placement is not None else None)


def out_of_memory_words(placement: Placement) -> tuple[str, str]:
    """The message and hint for a worker that exited with :data:`OUT_OF_MEMORY`."""
    limits = placement.limits
    return (
        f"its worker ran out of memory outside any call: its memory limit, "
        f"{size_text(limits.get('memory'))} (set by {set_where(placement)}), is "
        "less than the worker itself needs to run",
        f"raise the memory limit where it is set: a worker needs room for at least one "
        f"thread stack ({size_text(_stack_size())}) above what the plugin's code loads; "
        "the worker is being replaced",
    )


def at_import(error: PlugbayError, plugin_id: str, guard: Guard | None) -> PlugbayError:
    """In a sandboxed worker, the import error (``loading.import_plugin``'s) whose cause is
    a ``MemoryError``: its memory limit (``guard.classify``); any other as it is."""
    cause = error.__context__
    if guard is None or not isinstance(cause, MemoryError):
        return error
    from plugbay.isolation.guard import classify

    return classify(cause, plugin_id, guard) or error


def at_load(
    error: PlugbayError, manifest: PluginManifest, placement: Placement | None
) -> PlugbayError:
    """The worker's report of a limit it hit as the plugin loaded, in the host's words
    when it is its memory limit (a ``MemoryError``): the limit, where it was set, and
    what to do; any other error as it is."""
    if placement is None or error.details.get("limit") != "memory":
        return error
    limits = placement.limits
    return ResourceLimitExceeded(
        f"loading it ran out of memory: its memory limit, {size_text(limits.get('memory'))} "
        f"(set by {set_where(placement)}), is less than its code takes as it loads "
        f"({error.message})",
        plugin=manifest.id,
        hint="raise the memory limit where it is set, or have the plugin allocate less at "
        "import and in its constructor; the worker is being replaced",
        details=dict(error.details),
    )


def at_call(
    error: PlugbayError, manifest: PluginManifest, placement: Placement | None
) -> PlugbayError:
    """The worker's report of a memory limit a call hit (``guard.classify``'s), with the
    limit and where it was set (:func:`set_where`); any other error as it is."""
    limits = placement.limits if placement is not None else {}
    said = str(error.message)
    if error.details.get("limit") != "memory" or not limits.get("memory"):
        return error
    if not said.startswith(_CALL_HIT):
        return error
    where = f", {size_text(limits.get('memory'))} (set by {set_where(placement)})"
    return ResourceLimitExceeded(
        _CALL_HIT + where + said[len(_CALL_HIT) :],
        plugin=manifest.id,
        hint=error.hint,
        details=dict(error.details),
    )
