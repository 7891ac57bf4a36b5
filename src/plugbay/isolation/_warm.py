"""The zygote's warm-up: what every worker would otherwise do first, done once before forking.

A worker shares the zygote's pages until it writes to one; each page it writes becomes
its own copy, and those copies are its memory (USS). Much of what a worker writes in
its first moments is not the plugin's doing but the runtime's first use of itself:
lazily built caches (msgspec's type information for the frames and the manifest, the
event loop's machinery, ``typing`` and ``inspect`` caches for command signatures,
the patterns and tables of the sandbox layers), and the garbage those leave behind
(the cgroup hierarchies the zygote finds itself, see ``zygote_main``). Done here once, those pages are built in the zygote and only read by
its workers. :func:`freeze` then moves every object the zygote holds out of the
cyclic collector's reach, so a worker's collections never write their headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import gc
import os
import socket
import sys
from typing import Any

__all__ = ["freeze", "map_code", "prepare"]

_MANIFEST = """
id = "plugbay.warm"
version = "1.0.0"
type = "utility"
entry = "warm:Warm"
host = ">=0.1.0 <1.0.0"
isolation = "process"

[dependencies]
"plugbay.other" = "^1.0"
"""


_PLUGIN = """
from plugbay import UtilityPlugin, command


class Warm(UtilityPlugin):
    @command
    def echo(self, x: int) -> int:
        return x
"""


def prepare() -> list[str]:
    """Run once in the zygote, after its imports and before its first fork. A step that
    fails is left for each worker to meet (and report) as it would have anyway; the
    names of those steps are returned."""
    failed = []
    for step in (_manifest, _commands, _plugin, _loop, _layers):
        try:
            step()
        except Exception:
            failed.append(step.__name__)
    gc.collect()
    _fill_free_blocks()
    with contextlib.suppress(AttributeError, OSError):  # not glibc: its heap is left as it is
        _fill_free_heap()
    freeze()
    return failed


#: objects that fill the zygote's free small-object slots (see _fill_free_blocks)
_FILLER: list[object] = []
#: pymalloc's block sizes (bytes) and an object of exactly that size: ``object()`` is 16,
#: a float 24 (a 32-byte block), ``bytes(n)`` 33 + n
_SMALL: dict[int, Any] = {16: object, 32: lambda: float(len(_FILLER))}


def _free_blocks() -> dict[int, int]:
    """Free blocks in pymalloc's used pools, by block size, as ``sys._debugmallocstats``
    prints them (on the C stream: read back from a memfd); {} without pymalloc."""
    fd = os.memfd_create("plugbay-mallocstats")
    saved = os.dup(2)
    try:
        sys.stderr.flush()
        os.dup2(fd, 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 1 << 20).decode()
    finally:
        os.close(saved)
        os.close(fd)
    free = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and all(p.isdigit() for p in parts):
            free[int(parts[1])] = int(parts[4])
        elif free and not parts:
            break
    return free


def _fill_free_blocks() -> int:
    """Take every free block of the zygote's partly used pools, and keep them.

    A worker's new objects go where pymalloc finds a free block first: in the pools the
    zygote's collections and warm-up left holes in, one here and one there, so each new
    object would copy a page of the zygote's (and write the pool's header page). With
    those holes filled, a worker's objects go to fresh pools, side by side. The filler
    is the zygote's memory, shared by every worker (about half a MiB); returns how many."""
    for size, count in _free_blocks().items():
        make = _SMALL.get(size, lambda n=size - 33: bytes(n))
        _FILLER.extend(make() for _ in range(count))
    return len(_FILLER)


def freeze() -> None:
    """Before each fork: everything the zygote holds goes to the permanent generation."""
    gc.freeze()


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


#: glibc chunks taken by _fill_free_heap (addresses; never freed: the zygote keeps them)
_HEAP_FILLER: list[int] = []


def _fill_free_heap() -> int:
    """:func:`_fill_free_blocks` for glibc's heap, where objects over 512 bytes live (dict
    tables, code, the compiler's arenas): every free chunk below the heap's top is taken,
    largest requests first, so a worker's allocations start at the top, on fresh pages.
    A request the top answered is given back at once. Returns the bytes taken."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_ssize_t]
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    free = info.fordblks - info.keepcost  # never more than this: the loop ends whatever malloc does
    taken, size = 0, 1 << 16
    while size >= 32:
        while taken + size <= free:
            top = libc.sbrk(0) - libc.mallinfo2().keepcost  # where the top chunk begins
            chunk = libc.malloc(size)
            if chunk is None:
                break
            if chunk >= top:
                libc.free(chunk)
                break
            _HEAP_FILLER.append(chunk)
            taken += size
        size //= 2
    return taken


#: a shared object's code and read-only data (the segments a worker maps from the file)
_CODE_PERMISSIONS = ("r-xp", "r--p")
#: madvise: map every page of a range, as reading each would (one call, Linux >= 5.14)
_MADV_POPULATE_READ = 22


def map_code() -> int:
    """Map every page of the shared objects' code and read-only data into the zygote.

    A file's page counts in a process's USS while that process alone maps it: an
    extension module's code that the host never runs (uvloop's, when the host runs
    asyncio) and the zygote never ran would be each worker's own, the first worker's
    alone (0.8 MiB of uvloop's). Mapped here, every such page is shared with the
    zygote. Unlike its heap, a file's pages are shared whenever both map them, so this
    need not come before a fork: the zygote does it once it is first idle after its
    first fork, off every start's path (2-4 ms). Returns the pages mapped."""
    from plugbay.isolation._layer import _libc

    pages = 0
    page = os.sysconf("SC_PAGE_SIZE")
    madvise = _libc().madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    with open("/proc/self/maps") as maps:
        lines = maps.read().splitlines()
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[1] not in _CODE_PERMISSIONS or ".so" not in fields[5]:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        try:  # never past the file's last page (a read there is a SIGBUS)
            stat = os.stat(fields[5])
        except OSError:
            continue
        if stat.st_ino != int(fields[4]):  # replaced since it was mapped: its size is not ours
            continue
        end = min(end, start + -(-(stat.st_size - int(fields[2], 16)) // page) * page)
        if end <= start:
            continue
        pages += (end - start) // page
        if (
            madvise(start, end - start, _MADV_POPULATE_READ) != 0
            and ctypes.get_errno() == errno.EINVAL
        ):
            for address in range(start, end, page):  # before Linux 5.14
                ctypes.string_at(address, 1)
    return pages


def _manifest() -> None:
    from plugbay.model.manifest import parse_manifest

    parse_manifest(_MANIFEST)


def _commands() -> None:
    """A throwaway plugin class: its commands checked, described and called as a
    worker does with the real plugin's (``CommandSpec``'s lazy parts are built)."""
    from plugbay.api import UtilityPlugin, command, command_specs

    class Warm(UtilityPlugin):
        @command
        def echo(self, x: int, text: str = "") -> int:
            return x

        @command
        async def echo_async(self, x: int) -> dict[str, Any]:
            return {"x": x}

    plugin = Warm()
    for spec in command_specs(Warm).values():
        spec.signature()
        spec.describe()
        spec.schema()
        params = spec.validate_params({"x": 1}, plugin="plugbay.warm", strict=False)
        result = spec.func(plugin, **params)
        if asyncio.iscoroutine(result):
            result.close()
        else:
            spec.validate_result(result, plugin="plugbay.warm")


def _layers() -> None:
    """The sandbox layers made and ordered as a worker does, and the usual seccomp
    filters built ahead (not installed): what they compile on first use (patterns,
    tables) is then here."""
    import os

    from plugbay.isolation import _layer, _seccomp, limits

    libc = _layer._libc()  # the handle the layers share, its functions looked up once
    for name in ("prctl", "syscall", "unshare", "clearenv", "malloc_trim"):
        getattr(libc, name)
    layers = limits.default_layers("plugbay-warm", notify=True)
    sorted(layers, key=limits._rank)
    limits._thread_count()
    # the filters of the usual grants (none, or TCP), with and without a listener: a
    # worker fills in its pid (_seccomp.packed) and builds none
    for notify in (True, False):
        for tcp in (False, True):
            _seccomp.prebuild(_seccomp.FilterSpec(pid=0, allow_tcp=tcp, notify=notify))
    _seccomp.packed(_seccomp.FilterSpec(pid=os.getpid(), notify=True))


def _plugin() -> None:
    """A throwaway plugin imported, given its context and unloaded, as a worker loads
    one: the import machinery, the manifest file path and the context's parts."""
    import logging
    import shutil
    import tempfile
    from pathlib import Path

    from plugbay.api import Environment, Events, PluginConfig, PluginContext, Secrets
    from plugbay.isolation.inline import new_instance
    from plugbay.isolation.loading import import_plugin, unload_code
    from plugbay.model.manifest import load_manifest
    from plugbay.monitor.logs import RateLimiter
    from plugbay.monitor.metrics import PluginMetrics

    root = Path(tempfile.mkdtemp(prefix="plugbay-warm-"))
    try:
        (root / "plugin.toml").write_text(_MANIFEST)
        (root / "warm.py").write_text(_PLUGIN)
        manifest = load_manifest(root / "plugin.toml")
        code = import_plugin(manifest)
        try:
            instance = new_instance(code)
            metrics = PluginMetrics(manifest.id)
            RateLimiter(500.0, 2000.0).allow()
            instance.context = PluginContext(
                environment=Environment(
                    host_version="0",
                    plugin_id=manifest.id,
                    plugin_version=str(manifest.version),
                    data_dir=root,
                    mode="production",
                    isolation="process",
                ),
                services=None,  # type: ignore[arg-type]
                config=PluginConfig({}),
                logger=logging.getLogger("plugbay.warm"),
                metrics=metrics,
                secrets=Secrets({}, plugin=manifest.id),
                events=Events(None, plugin=manifest.id),
            )
        finally:
            if code.namespace is not None:
                unload_code(code.namespace)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _loop() -> None:
    """An event loop with a frame channel on a socketpair, as a worker runs: frames
    both ways, so the transports, the decoder and the encoder are used once."""
    from plugbay.isolation import frames, loops

    async def exchange() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        got: list[frames.Message] = []
        done = asyncio.get_running_loop().create_future()

        def on_message(message: frames.Message) -> None:
            got.append(message)
            if isinstance(message, frames.Cleanup) and not done.done():
                done.set_result(None)

        loop = asyncio.get_running_loop()
        transport, channel = await loop.create_connection(
            lambda: frames.Channel(on_message, lambda *_: None), sock=ours
        )
        with theirs:
            theirs.sendall(
                b"".join(
                    frames.encode(m)
                    for m in (
                        frames.Load("/nonexistent/plugin.toml", "plugbay.warm", {}, "/", "0", "x"),
                        frames.Init(1),
                        frames.Call(2, "echo", {"x": 1}),
                        frames.Ping(3),
                        frames.Cleanup(4),
                    )
                )
            )
            await asyncio.wait_for(done, 5)
            channel.send(frames.Reply(2, 1))
            channel.send(frames.Pong(3))
            channel.flush()
            await asyncio.sleep(0)
        transport.close()
        await asyncio.sleep(0)

    loops.run(exchange(), sandboxed=True)
