"""A host's stop awaited off its loop: refused while that loop runs elsewhere, and done as
far as it can be once that loop is closed.

A host whose loop is still there (another thread's) is stopped there: its plugins'
``cleanup()`` and its tasks run on it, so a stop awaited on another loop is refused,
saying how to hand it over (``runtime.serving``). A host whose loop is closed (an
``asyncio.run(host.start())``, then a second ``asyncio.run`` for the rest: the first closed
the loop when it returned, cancelling the host's tasks) can never run its plugins'
``cleanup()`` again, but what it holds outside that loop can still be let go of, and is,
rather than left to the end of the process: each worker, a canary's or a shadow's too, is
killed with its process group (and what it left in its cgroup), the zygotes that fork them
end, storage images are unmounted, the monitor stops, the state closes and the state
directory's lock is released, so another ``Host`` can serve that directory at once. The
stop then raises :class:`~plugbay.api.errors.HostStateError` all the same, saying what it
did and what it could not: the plugins' ``cleanup()`` did not run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import time
from typing import TYPE_CHECKING, Final

from plugbay.api.errors import HostStateError
from plugbay.isolation import PluginHandle
from plugbay.isolation._cgroups import CgroupLayer
from plugbay.isolation.process import ProcessBackend, ProcessHandle
from plugbay.isolation.zygote import Zygote
from plugbay.runtime.records import PluginState
from plugbay.runtime.serving import SYNC_USE

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = ["release", "stop_off_loop"]

log = logging.getLogger("plugbay.host")

#: how long the killed workers are waited for, all together
_EXIT_WAIT: Final = 3.0


async def stop_off_loop(host: Host) -> None:
    """Nothing when the stop is awaited on the host's loop; otherwise refused, or, when
    that loop is closed, the host stopped as far as can be without it, and then refused
    all the same, saying so (see the module doc)."""
    serving = host.manager.serving
    loop = serving.loop
    if loop is None or not loop.is_closed():
        serving.check_loop("stop the host")  # its tasks are on its loop
        return
    killed = _end_workers(host)
    if host.monitor is not None:  # its tasks ended with the loop: what is left is threads
        try:
            await host.monitor.stop()
        except RuntimeError as exc:  # a task of the closed loop still pending
            log.warning("the monitor could not stop without its event loop: %s", exc)
    if host.store is not None:
        host.store.close()
    release(host)
    where = f" on {host.state_dir}" if host.state_dir is not None else ""
    raise HostStateError(
        "stopped the host without its plugins' cleanup(): the event loop this host started "
        f"on (in thread '{serving.thread}') is closed, and their cleanup() would run there",
        hint=f"what could be done without it is done: {_workers(killed)}, the state is "
        f"closed and the lock{where} released, so a new Host may serve it now; what the "
        "plugins would have saved or closed in cleanup() is lost. asyncio.run() closes its loop, "
        "with the host's tasks, when it returns: start, use and stop a host in one "
        "asyncio.run(main()) ('async with Host(...) as host:' in main), or from "
        f"synchronous code run it on a loop of its own in a thread ({SYNC_USE})",
    )


def _workers(killed: int) -> str:
    if not killed:
        return "no worker process was left to end"
    return f"its {killed} worker process(es) were killed, with what they started"


def _end_workers(host: Host) -> int:
    """Kill every sandboxed plugin's worker (its process group, and its cgroup), a
    canary's and a shadow's too, end the zygotes, unmount the storage images; the records
    say each plugin stopped. How many workers were killed."""
    manager = host.manager
    handles: list[ProcessHandle] = []
    for handle in _running(host):
        if isinstance(handle, ProcessHandle):
            handles.append(handle)
        else:  # in this process (inline, Wasm), or Ray's: let go of
            with contextlib.suppress(RuntimeError):  # what it would hand its closed loop
                handle.release()
    manager._routes.clear()  # no call finds a route: each is told the host stopped
    for handle in handles:
        _kill(handle)
    _wait_exits(handles)
    for handle in handles:
        _let_go(handle)
    for backend in manager.backends.values():
        if isinstance(backend, ProcessBackend):
            for zygote in [backend.zygote, *backend.env_zygotes.values()]:
                _end_zygote(zygote)
            backend.env_zygotes.clear()
            backend.quotas.close()  # after the workers: their mounts are free now
    return len(handles)


def _running(host: Host) -> list[PluginHandle]:
    """Each version running, once: the plugins' (each record then says it stopped), and
    those tried beside them, the canaries' and shadows' (``runtime.trials``: their tasks
    ended with the loop, and the trials with them)."""
    running: dict[int, PluginHandle] = {}
    for rec in host.manager.records_by_id.values():
        handle, rec.handle = rec.handle, None
        if handle is None:  # not running (failed, disabled, stopped): as it was
            continue
        rec.state, rec.started_at = PluginState.STOPPED, None
        running[id(handle)] = handle
    trials = host.trials
    tried = [c.handle for c in trials.canaries.values()]
    tried += [s.handle for s in trials.shadows.values()]
    for handle in tried:
        if handle is not None:  # a canary being promoted may be the plugin's now
            running.setdefault(id(handle), handle)
    trials.canaries.clear()
    trials.shadows.clear()
    return list(running.values())


def _kill(handle: ProcessHandle) -> None:
    """SIGKILL the worker's process group (it leads one: it started a session), then the
    worker itself through its pidfd. The group is signalled only while the worker is
    known to be alive, so its number is still its own."""
    child = handle.child
    if not child.exited():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
    child.kill()


def _wait_exits(handles: list[ProcessHandle]) -> None:
    """Wait (bounded) until each killed worker has exited: its pidfd becomes readable."""
    end = time.monotonic() + _EXIT_WAIT
    for handle in handles:
        fd = handle.child.fd
        if fd is None or handle.child.closed:
            continue
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        poll.poll(max(0, int((end - time.monotonic()) * 1000)))


def _let_go(handle: ProcessHandle) -> None:
    """What the host held of a killed worker: its pidfd, its socket, its seccomp listener
    and its cgroup (whatever it started, and left there, is killed with it)."""
    handle.child.close()
    with contextlib.suppress(OSError):
        handle._sock.close()
    if handle.seccomp is not None:
        handle.seccomp.close()
    if handle.cgroup is not None:
        try:
            CgroupLayer(handle.cgroup).remove()
        except OSError as exc:
            log.warning("worker %d: its cgroup could not be removed: %s", handle.pid, exc)


def _end_zygote(zygote: Zygote) -> None:
    """Close the zygote's control socket: it exits when it reads the end, and any worker
    of its still alive dies with it (``PR_SET_PDEATHSIG``)."""
    control: socket.socket | None = zygote._control
    zygote._control = None
    if control is not None:
        control.close()
    if zygote.pid is not None:
        _quiet().pids.add(zygote.pid)


class _ClosedLoopExit(logging.Filter):
    """asyncio's child watcher says it has no loop to tell when a process of a closed
    loop exits: for a zygote ended here that is expected, so it is not said."""

    def __init__(self) -> None:
        super().__init__()
        self.pids: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Loop %r that handles pid %r is closed" and len(record.args or ()) == 2:
            pid = record.args[1]  # type: ignore[index]
            if pid in self.pids:
                self.pids.discard(pid)
                return False
        return True


_QUIET: list[_ClosedLoopExit] = []


def _quiet() -> _ClosedLoopExit:
    """The filter on asyncio's logger, added the first time a zygote is ended here."""
    if not _QUIET:
        _QUIET.append(_ClosedLoopExit())
        logging.getLogger("asyncio").addFilter(_QUIET[0])
    return _QUIET[0]


def release(host: Host) -> None:
    """The state closed, the lock released, the host stopped: what a stop ends with, on
    its loop (``Host._close``) or after it closed (above); the store is closed first."""
    try:
        if host.state is not None:
            state, host.state = host.state, None
            host.manager.state = None
            state.close()
    finally:  # a state that fails to close still gives up the lock: a new host may start
        if host._host_lock is not None:
            host._host_lock.release()
            host._host_lock = None
        host._started = host._opened = False
        host.phase = "stopped"
        host.manager.serving.close()
