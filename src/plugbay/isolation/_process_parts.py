"""What the process backend is built from, apart from the backend and its handle.

A worker's commands as the host sees them (:class:`RemoteSpec`), what the zygote is
asked for (:func:`worker_request`, :func:`bound_file_size`), a sandboxed plugin's
storage image mounted before its worker starts (:func:`enforce_storage`), the measure
of a data directory a sampled storage quota counts (:func:`du`), the seccomp listener a
sandboxed worker sends once it is confined, a worker's figures (psutil), and the
names a worker's death is told in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from plugbay.api import CommandSpec, ParamInfo
from plugbay.api.errors import PlugbayError, PluginCrashed
from plugbay.isolation import frames
from plugbay.isolation.policy import Placement
from plugbay.isolation.quota import QuotaMounts, QuotaStatus, QuotaUnavailable
from plugbay.isolation.zygote import receive_fds
from plugbay.model.manifest import PluginManifest, parse_size
from plugbay.model.sizes import size_text

__all__ = [
    "FULL_BELOW",
    "RemoteSpec",
    "await_listener",
    "bound_file_size",
    "du",
    "enforce_storage",
    "for_the_worker",
    "host_reply",
    "process_usage",
    "receive_listener",
    "signal_name",
    "size_text",
    "worker_request",
]

_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


class _LooseParams(dict[str, Any]):
    """Parameters bound for a worker, which checks them, as text and JSON values it
    converts (the CLI, HTTP); a plain ``dict`` is checked strictly (``RequestsToWorker.call``)."""

    strict = False


class RemoteSpec(CommandSpec):
    """A command that lives in a worker: described by it, checked by it."""

    def __init__(self, remote: frames.RemoteCommand) -> None:
        self.owner = object
        self.name = remote.name
        self.func = _runs_in_the_worker
        self.is_async = True
        self.blocking = False
        self.timeout = remote.timeout
        self.doc = str(remote.description.get("doc", ""))
        self.returns = Any
        self.params = tuple(
            ParamInfo(
                p["name"],
                _TYPES.get(p["type"], Any),
                p.get("default", ParamInfo.__dataclass_fields__["default"].default),
            )
            for p in remote.description.get("params", [])
        )
        self._remote = remote
        #: the JSON Schemas, once known (the worker sends them when asked: ``Describe``)
        self.schemas: dict[str, Any] | None = remote.schema

    def validate_params(
        self, params: Mapping[str, Any], *, plugin: str | None = None, strict: bool = True
    ) -> dict[str, Any]:
        # the mode is the class, not an attribute set on each call's copy: a plain dict
        # (the common, strict call: ~100 ns less than a subclass's copy) or a loose one
        return dict(params) if strict else _LooseParams(params)

    def validate_result(self, value: Any, *, plugin: str | None = None) -> Any:
        return value

    def signature(self) -> str:
        return self._remote.signature

    def schema(self) -> dict[str, Any]:
        """The schemas the worker sent (``ProcessHandle.describe_commands``); ``{}`` until then."""
        return dict(self.schemas or {})

    def describe(self) -> dict[str, Any]:
        return dict(self._remote.description)


def for_the_worker(manifest: PluginManifest) -> frames.LoadManifest:
    """What a worker needs of a manifest the host has read and checked (``Load.manifest``).
    Its code is where its file is, as a worker reading the file would take it: on a Ray
    node that is the node's copy of the code (``ray._landed`` moves only the path)."""
    root = manifest.path.parent if manifest.path is not None else manifest.root
    return frames.LoadManifest(
        manifest.id,
        str(manifest.version),
        manifest.type,
        manifest.entry,
        str(manifest.path) if manifest.path is not None else None,
        str(root) if root is not None else None,
        manifest.distribution,
        list(manifest.listens),
    )


def worker_request(
    manifest: PluginManifest,
    placement: Placement | None,
    data_dir: Path | None,
    *,
    loop_probe: bool = False,
) -> dict[str, Any]:
    """What the zygote is asked for: a sandboxed worker when the placement says so, else a
    worker under the manifest's own resource limits. ``loop_probe``: the asker answers
    the worker runtime's own io_uring probe unreported (``SeccompListener``), so a
    sandboxed worker may run uvloop."""
    if placement is not None and placement.sandboxed:
        if data_dir is None:
            raise ValueError("a sandboxed worker needs its data directory")
        return {
            "sandbox": {**placement.sandbox_request(manifest, data_dir), "loop_probe": loop_probe}
        }
    res = manifest.resources
    return {
        "env": {"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"},
        "limits": {
            "memory": parse_size(res.memory),
            "cpu_seconds": int(res.cpu_seconds) if res.cpu_seconds else None,
            "open_files": res.open_files,
            "file_size": parse_size(res.file_size),
        },
    }


def bound_file_size(request: dict[str, Any], quota: int) -> None:
    """A sampled quota cannot stop a write: one file at least must not outgrow it."""
    fields = request["sandbox"]["policy"]
    size = fields["file_size_bytes"]
    fields["file_size_bytes"] = quota if size is None else min(size, quota)


def du(path: Path) -> int:
    """Bytes allocated beneath ``path`` (what a quota counts: sparse files count as written)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
        except OSError:
            continue
    return total


#: free bytes under which a storage image counts as full (a write of a block or two fails)
FULL_BELOW = 64 * 1024


def receive_listener(report: socket.socket) -> tuple[int | None, bool]:
    """The worker's seccomp listener, sent once it is confined (None: it has none, or
    it failed to start and closed the socket), and whether the worker's runtime makes a
    uvloop loop next, whose io_uring probe is then the listener's first denial
    (``SeccompListener(loop_probe=...)``)."""
    with report:
        report.settimeout(60)
        try:
            data, fds, _flags, _addr = socket.recv_fds(report, 1, 1)
        except OSError:
            return None, False
    for extra in fds[1:]:
        os.close(extra)
    return (fds[0], data == b"U") if fds else (None, False)


async def await_listener(report: socket.socket, timeout: float = 60) -> tuple[int | None, bool]:
    """:func:`receive_listener` on the event loop: the socket is watched for the listener
    instead of a thread of the default executor blocking on it until the worker is confined
    (a thread hop and back a start, and a thread the storage images' mounts wait for while
    several workers start at once)."""
    with report:
        report.setblocking(False)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            data, fds = await receive_fds(report, 1, 1, deadline=deadline)
        except OSError:  # the worker closed it, or never sent it (TimeoutError)
            return None, False
    for extra in fds[1:]:
        os.close(extra)
    return (fds[0], data == b"U") if fds else (None, False)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


async def enforce_storage(
    quotas: QuotaMounts,
    manifest: PluginManifest,
    placement: Placement | None,
    data_dir: Path | None,
) -> QuotaStatus:
    """Mount the plugin's storage image at its data directory, else say why it is sampled.

    The mount runs in a thread, which a cancel (a start cut short) cannot stop: it is
    waited for then and let go, so no image stays mounted with nobody to unmount it."""
    quota = placement.limits.get("storage") if placement is not None else None
    if placement is None or not placement.sandboxed or quota is None or data_dir is None:
        return QuotaStatus(False, "no storage quota applies")
    mounting = asyncio.ensure_future(
        asyncio.to_thread(quotas.attach, data_dir, int(quota), manifest.id)
    )
    try:
        await asyncio.shield(mounting)
    except (QuotaUnavailable, OSError) as exc:
        why = exc.message if isinstance(exc, QuotaUnavailable) else f"{exc}"
        logging.getLogger("plugbay.isolation.process").warning(
            "plugin '%s': storage quota sampled, not enforced by the kernel: %s",
            manifest.id, why,
        )  # fmt: skip
        return QuotaStatus(False, why)
    except asyncio.CancelledError:
        await asyncio.wait([mounting])
        if not mounting.cancelled() and mounting.exception() is None:
            await asyncio.to_thread(quotas.detach, data_dir)
        raise
    return QuotaStatus(True, f"{size_text(quota)} image mounted at {data_dir}")


def _runs_in_the_worker(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("this command runs in its plugin's worker process, not in the host")


def process_usage(pid: int, *, uss: bool = True) -> dict[str, Any]:
    """What process ``pid`` uses now (psutil): memory, CPU time, I/O, open files, threads;
    ``{"pid", "error"}`` when it cannot be read. ``uss=False`` leaves out its private
    memory (``uss_bytes`` None), whose reading walks its page tables (about a millisecond
    for a worker, where the rest takes a fraction of one)."""
    import psutil  # here: some 8 ms of the host's start, first asked for once it serves

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            memory = proc.memory_full_info() if uss else proc.memory_info()
            cpu = proc.cpu_times()
            io = proc.io_counters()
            return {
                "pid": pid,
                "rss_bytes": memory.rss,
                "uss_bytes": getattr(memory, "uss", None),
                "cpu_seconds": cpu.user + cpu.system,
                "read_bytes": io.read_bytes,
                "write_bytes": io.write_bytes,
                "open_files": proc.num_fds(),
                "threads": proc.num_threads(),
            }
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess) as exc:
        return {"pid": pid, "error": f"{type(exc).__name__}: {exc}"}


def crash_error(plugin: str, pid: int, code: int) -> PluginCrashed:
    """What a worker's exit (``os.waitstatus_to_exitcode``) tells its callers, when it
    hit no limit."""
    hint = f"'plugbay info {plugin}' and the host log say more"
    if code == -signal.SIGSYS:
        return PluginCrashed(
            "its worker made a system call the sandbox forbids and was killed (seccomp)",
            plugin=plugin,
            hint="the plugin tried something no sandboxed plugin may do",
            details={"pid": pid, "signal": "SIGSYS", "layer": "seccomp"},
        )
    if code < 0:
        name = signal_name(-code)
        return PluginCrashed(
            f"its worker was killed by {name}",
            plugin=plugin,
            hint=hint,
            details={"pid": pid, "signal": name},
        )
    return PluginCrashed(
        f"its worker process exited with code {code}",
        plugin=plugin,
        hint=hint,
        details={"pid": pid, "exit_code": code},
    )


def look_at_image(
    data_dir: Path, quota: int, told: int | None
) -> tuple[int, int | None, dict[str, Any] | None] | None:
    """A kernel-enforced storage image at ``data_dir``: (bytes used, the use last reported
    full, the event to report now or None); None when it cannot be read. Each time it
    fills up is one event: a full image whose use changed is a new one."""
    try:
        st = os.statvfs(data_dir)  # a mounted local filesystem: microseconds
    except OSError:
        return None
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    free = st.f_bavail * st.f_frsize
    if (free < FULL_BELOW or st.f_favail == 0) and used != told:
        what = "files" if st.f_favail == 0 else "space"
        return (
            used,
            used,
            {
                "kind": "limit",
                "limit": "storage",
                "layer": "quota",
                "operation": "writing to its data directory",
                "detail": f"its data directory is out of {what}: {size_text(used)} used "
                f"of its {size_text(quota)} storage quota; the kernel refuses further "
                "writes (ENOSPC)",
            },
        )
    return used, (None if free > 4 * FULL_BELOW else told), None


async def host_reply(
    host_call: Callable[[str, str, str, dict[str, Any]], Awaitable[Any]],
    plugin_id: str,
    message: frames.HostCall,
) -> frames.HostReply:
    """The host's answer to a worker's call out (a service, another plugin, an event):
    its value, or an error the worker can act on, whatever went wrong."""
    try:
        value = await host_call(plugin_id, message.plugin, message.command, message.params)
        return frames.HostReply(message.id, value=value)
    except PlugbayError as exc:
        return frames.HostReply(message.id, error=exc.to_dict())
    except Exception as exc:
        return frames.HostReply(
            message.id, error=PlugbayError(f"{type(exc).__name__}: {exc}").to_dict()
        )
