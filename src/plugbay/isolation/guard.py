"""Inside a sandboxed worker: name what the kernel refused, and report it.

The kernel layers (``isolation.limits``) are the boundary: they stop a plugin
whatever it does, ``ctypes`` included. What they cannot do is explain: a
Landlock denial is a bare ``EACCES``, a seccomp one a bare ``EPERM``, an
unreachable network an ``ENETUNREACH``, and ``os.system`` just returns -1.
This module adds the words and the record:

* an audit hook (PEP 578; a plugin cannot remove one) refuses, before the
  kernel would, the operations a plugin was not granted — running a program,
  forking, signalling another process, a TCP connection to an address it was
  not granted, raising its own limits — with a :class:`PermissionError` that
  says what was tried and which permission would allow it;
* :func:`classify` turns what a call raised into the error the caller sees:
  :class:`~plugbay.api.errors.PermissionDenied` for a denial,
  :class:`~plugbay.api.errors.ResourceLimitExceeded` (the worker is then replaced)
  for a limit hit (memory, threads, open files, file size; storage keeps the worker);
* every denial and limit hit is reported to the host as a security event;
* an ``EACCES`` on a path the sandbox allows (its data directory, a granted
  ``read:``/``write:`` path) that the file's own mode or owner refuses is not the
  sandbox's: it stays the plugin's error, and :func:`file_permissions_hint` says so.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

from plugbay.api.errors import PermissionDenied, PlugbayError, ResourceLimitExceeded
from plugbay.isolation._start_memory import NO_STACK_WORDS, room_for_a_stack
from plugbay.model.sizes import size_text

__all__ = ["Guard", "classify", "file_permissions_hint"]

#: audit events that start another program
_EXEC_EVENTS: Final = frozenset(
    {"os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen", "os.startfile"}
)
_FORK_EVENTS: Final = frozenset({"os.fork", "os.forkpty"})
_NET_EVENTS: Final = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
_WRITE_FLAGS: Final = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

#: errno → (limit, what the plugin hit)
_LIMIT_ERRNOS: Final = {
    errno.EMFILE: ("open_files", "its open-files limit"),
    errno.ENFILE: ("open_files", "the open-files limit"),
    errno.EFBIG: ("file_size", "its file-size limit"),
    errno.EDQUOT: ("storage", "its storage quota"),
    # the only filesystem a sandboxed plugin may write is its data directory's
    errno.ENOSPC: ("storage", "its storage quota"),
}
#: audit events that change a file's mode or owner (seccomp refuses both to a plugin)
_CHANGES: Final = {"os.chmod": "changing the mode of", "os.chown": "changing the owner of"}
#: audit events whose file a denial's words name
_NOTED: Final = frozenset({"open", *_CHANGES})
#: what CPython raises when the kernel refuses a new thread (``_thread.start_new_thread``)
_NO_THREAD: Final = "can't start new thread"
#: what a call hit when a new thread found no room for its stack
_NO_STACK: Final = f"its memory limit: {NO_STACK_WORDS}"
#: a full data directory is no reason to distrust the process: the plugin may free space
_KEEPS_WORKER: Final = frozenset({"storage"})

Report = Callable[[dict[str, Any]], None]


class _Denied(PermissionError):
    """Raised by the audit hook; carries what was tried and what would allow it."""

    def __init__(self, operation: str, permission: str | None, layer: str) -> None:
        super().__init__(errno.EPERM, f"plugbay sandbox: {operation} is not allowed")
        self.operation = operation
        self.permission = permission
        self.layer = layer


class Guard:
    """The audit hook of one worker. ``rules`` come from the host's policy."""

    def __init__(self, plugin_id: str, rules: Mapping[str, Any], report: Report) -> None:
        self.plugin_id = plugin_id
        self.allow_exec = bool(rules.get("allow_exec", False))
        self.allow_fork = self.allow_exec or int(rules.get("processes", 0)) > 0
        self.network = {_endpoint(g) for g in rules.get("network", ())}
        storage = rules.get("storage")
        self.storage = int(storage) if storage is not None else None
        #: layers whose denials the host hears from the kernel itself (not reported here)
        self.kernel_reports = frozenset(rules.get("kernel_reports", ()))
        self.report = report
        self.pid = os.getpid()
        self._busy = False
        #: the last file opened, and whether for writing (a denied open names it)
        self.last_open: tuple[str, bool] | None = None
        #: the last file whose mode or owner it asked to change (what, path)
        self.last_change: tuple[str, str] | None = None
        #: where the sandbox lets it read, and write (its data directory, its grants)
        writes = [rules["data_dir"]] if rules.get("data_dir") else []
        self.writes = tuple(os.path.realpath(p) for p in [*writes, *rules.get("writes", ())])
        self.reads = (*self.writes, *(os.path.realpath(p) for p in rules.get("reads", ())))

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self._busy:  # reporting must not audit itself
            return
        if event in _NOTED:
            self._note_file(event, args)
        elif event == "socket.__new__":
            if args[1] in (socket.AF_INET, socket.AF_INET6) and not self.network:
                self._deny(
                    "opening a network socket (no network destination is granted)",
                    "network:ADDRESS:PORT",
                    "netns/seccomp",
                )
        elif event in _EXEC_EVENTS:
            if not self.allow_exec:
                self._deny(f"running a program ({event})", "subprocess", "seccomp")
        elif event in _FORK_EVENTS:
            if not self.allow_fork:
                self._deny(f"starting a process ({event})", "subprocess", "seccomp")
        elif event in ("os.kill", "os.killpg"):
            target = int(args[0])
            if event == "os.killpg" or target not in (0, self.pid):
                self._deny(f"sending signal {args[1]} to process {target}", None, "seccomp")
        elif event in _NET_EVENTS:
            self._check_network(event, args)
        elif event == "resource.setrlimit":
            self._deny("changing its resource limits", None, "seccomp")

    def _note_file(self, event: str, args: tuple[Any, ...]) -> None:
        """The file a call names (a denial of it is then worded for what was asked)."""
        path, mode, flags = args[0], args[1], args[2]
        if isinstance(path, int):
            return
        if event in _CHANGES:
            self.last_change = (_CHANGES[event], os.fsdecode(path))
            return
        writing = bool(flags & _WRITE_FLAGS) if isinstance(flags, int) else False
        if isinstance(mode, str):
            writing = writing or any(c in mode for c in "wax+")
        self.last_open = (os.fsdecode(path), writing)

    def _check_network(self, event: str, args: tuple[Any, ...]) -> None:
        sock, address = args[0], args[1]
        family = getattr(sock, "family", None)
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return  # its own channel and other local sockets are the kernel's to judge
        host, port = str(address[0]), int(address[1])
        if event == "socket.bind" and port == 0 and self.network:
            return  # an ephemeral port to connect from, for a plugin granted a destination
        wanted = f"{'[' + host + ']' if ':' in host else host}:{port}"
        allowed = self.network
        if not {(host, port), ("*", port), (host, -1), ("*", -1)} & allowed:
            verb = "listening on" if event == "socket.bind" else "connecting to"
            self._deny(f"{verb} {wanted}", f"network:{wanted}", "netns/landlock")

    def _deny(self, operation: str, permission: str | None, layer: str) -> None:
        self.denied(operation, permission, layer)
        raise _Denied(operation, permission, layer)

    def denied(self, operation: str, permission: str | None, layer: str) -> None:
        self._busy = True
        try:
            self.report(
                {
                    "kind": "denied",
                    "operation": operation,
                    "permission": permission,
                    "layer": layer,
                }
            )
        finally:
            self._busy = False


def _endpoint(grant: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` → (address, port); a port of ``*`` is -1 (any port)."""
    host, _, port = grant.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port) if port.isdigit() else -1


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify(exc: BaseException, plugin_id: str | None, guard: Guard | None) -> PlugbayError | None:
    """The sandbox's reading of what a call raised, or None when it is the plugin's own error.

    A limit hit gives :class:`ResourceLimitExceeded` with ``details['replace']``:
    the worker must then be replaced. A denial gives :class:`PermissionDenied`.
    Both are reported to the host through ``guard``.
    """
    for error in _chain(exc):
        if isinstance(error, MemoryError):
            return _limit(plugin_id, guard, "memory", "its memory limit", error)
        if isinstance(error, RuntimeError) and str(error) == _NO_THREAD:
            # CPython's word for pthread's EAGAIN: the cgroup's task cap (resources.threads),
            # or an address space (resources.memory) with no room for the thread's stack
            if not room_for_a_stack():
                return _limit(plugin_id, guard, "memory", _NO_STACK, error)
            return _limit(plugin_id, guard, "threads", "its thread limit", error)
        if isinstance(error, _Denied):
            return _denied(plugin_id, error.operation, error.permission, error.layer)
        if isinstance(error, OSError) and error.errno in _LIMIT_ERRNOS:
            limit, what = _LIMIT_ERRNOS[error.errno]
            return _limit(plugin_id, guard, limit, what, error)
        if isinstance(error, OSError) and error.errno in (
            errno.EACCES,
            errno.EPERM,
            errno.ENETUNREACH,
        ):
            if _file_mode_refused(error, guard) is not None:
                return None  # the file's own permissions, not the sandbox: the plugin's error
            operation, permission, layer = _kernel_denial(error, guard)
            if guard is not None and layer not in guard.kernel_reports:
                guard.denied(operation, permission, layer)
            return _denied(plugin_id, operation, permission, layer)
    return None


def _kernel_denial(error: OSError, guard: Guard | None) -> tuple[str, str | None, str]:
    if error.errno == errno.ENETUNREACH:
        return "reaching the network", "network:ADDRESS:PORT", "netns"
    name = error.filename
    if name is None:
        if error.errno == errno.EACCES:  # Landlock: a TCP port, or a file by descriptor
            return f"an access outside its grants ({error.strerror})", None, "landlock"
        return f"a system call ({error.strerror})", None, "seccomp"
    path = os.path.abspath(os.fsdecode(name))
    changed = guard.last_change if guard is not None else None
    if error.errno == errno.EPERM and changed is not None and os.path.abspath(changed[1]) == path:
        return f"{changed[0]} {path}", None, "seccomp"  # chmod, chown: no grant allows them
    opened = guard.last_open if guard is not None else None
    if opened is not None and os.path.abspath(opened[0]) == path:
        writing = opened[1]
    else:  # not an open (a listing, a rename...): a missing target is a write
        writing = not os.path.lexists(path)
    kind = "write" if writing else "read"
    real = os.path.realpath(path)  # Landlock judges where a name leads: grant that
    operation = f"{'writing' if writing else 'reading'} {path}"
    if real != path:
        operation += f" (which leads to {real})"
    return operation, f"{kind}:{real}", "landlock"


def file_permissions_hint(exc: BaseException, guard: Guard | None) -> str | None:
    """The hint for an error whose cause is an ``EACCES`` the sandbox did not make (see
    the module docstring), or None."""
    for error in _chain(exc):
        if isinstance(error, OSError):
            refused = _file_mode_refused(error, guard)
            if refused is None:
                return None
            path, area, writing = refused
            return (
                f"the sandbox allows {'writing' if writing else 'reading'} {path} (it is "
                f"inside {area}, the plugin's to use), but the file's own permissions "
                f"refused it: {_owner_and_mode(path)}; on the host, give the file (or "
                "its directory) to the user plugbay runs as, or make it readable/writable "
                "with chmod; no 'plugbay grant' changes this"
            )
    return None


def _file_mode_refused(error: OSError, guard: Guard | None) -> tuple[str, str, bool] | None:
    """``(path, area, writing)`` when ``error`` is an ``EACCES`` on a path inside an
    area the sandbox lets the plugin use that way, and the file's own mode or owner
    refuses it (``access(2)`` checks those, not Landlock); else None."""
    if guard is None or error.errno != errno.EACCES or error.filename is None:
        return None
    path = os.path.realpath(os.fsdecode(error.filename))
    opened = guard.last_open
    if opened is not None and os.path.realpath(opened[0]) == path:
        writing = opened[1]
    else:
        writing = not os.path.lexists(path)
    areas = guard.writes if writing else guard.reads
    area = next((a for a in areas if path == a or path.startswith(a.rstrip("/") + "/")), None)
    if area is None:
        return None
    if os.path.lexists(path):
        target, mode = path, os.W_OK if writing else os.R_OK
    else:  # a new file: its directory must be writable and searchable
        target, mode = os.path.dirname(path), os.W_OK | os.X_OK
    return None if os.access(target, mode) else (path, area, writing)


def _owner_and_mode(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "its directory's mode or owner"
    return f"owned by uid {st.st_uid} as the sandbox sees it, mode {st.st_mode & 0o7777:04o}"


def _denied(
    plugin_id: str | None, operation: str, permission: str | None, layer: str
) -> PermissionDenied:
    hint = (
        f"declare it under [permissions] and have the operator run "
        f"'plugbay grant {plugin_id or 'ID'} {permission}'"
        if permission
        else "no permission allows this to a sandboxed plugin"
        + (
            " (shutil.copy and copy2 set the copy's mode: shutil.copyfile copies the content)"
            if operation.startswith(_CHANGES["os.chmod"])
            else ""
        )
    )
    return PermissionDenied(
        f"the sandbox denied {operation}",
        plugin=plugin_id,
        hint=hint,
        details={"operation": operation, "permission": permission, "layer": layer},
    )


def _limit(
    plugin_id: str | None, guard: Guard | None, limit: str, what: str, error: BaseException
) -> ResourceLimitExceeded:
    detail = f"{type(error).__name__}: {error}".rstrip(": ")
    if guard is not None:
        guard.report({"kind": "limit", "limit": limit, "detail": detail})
    if limit in _KEEPS_WORKER:
        quota = guard.storage if guard is not None else None
        size = f" of {size_text(quota)}" if quota is not None else ""
        return ResourceLimitExceeded(
            f"no space left in its data directory: the call hit {what}{size} ({detail})",
            plugin=plugin_id,
            hint="free space in the data directory (the plugin sees the OSError and may "
            "handle it), or raise resources.storage in the manifest (the host's policy caps it)",
            details={"limit": limit, "replace": False},
        )
    return ResourceLimitExceeded(
        f"the call hit {what} ({detail}); its worker is being replaced",
        plugin=plugin_id,
        hint=f"raise resources.{limit.replace('_', '-')} in the manifest (the host's policy "
        "caps it), or find what the plugin holds on to",
        details={"limit": limit, "replace": True},
    )
