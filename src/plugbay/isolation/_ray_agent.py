"""What runs on a Ray node for plugbay: a trusted plugin's bare actor, and the node's agent.

Both are plain classes here; ``isolation.ray`` wraps them with ``ray.remote`` when
it first needs them, so importing this module needs no Ray. Either one dials the
host back (``dial``) and sends the plugin's one-time token first: the host knows
which plugin a channel belongs to from the token it handed out, never from what
the channel says later. From then on the channel carries the process backend's
frames unchanged (``isolation.frames``): calls, cancellation, the broker's host
calls, logs, security reports, metrics and heartbeats.

:class:`PluginActor` (a trusted plugin, bare)
    The actor's process *is* the plugin's worker: it runs the worker runtime
    (``isolation.worker``) on the channel in a thread of its own, with no sandbox.
:class:`NodeAgent` (one per node, for every plugin the policy does not trust)
    Runs the process backend's zygote on its node and forks a sandboxed worker
    per plugin from it (every layer, as on the host's machine), then relays the
    worker's socket to the host's channel byte for byte. It knows how each worker
    ended (the zygote's wait status, the cgroup's OOM count), so the host names the
    limit a remote plugin hit exactly as it does a local one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugbay.isolation.base import EnvironmentPaths

__all__ = ["NodeAgent", "PluginActor", "dial", "node_id"]

#: a channel's first bytes: its token, as hex, then a newline
TOKEN_BYTES = 33
#: seconds the workers of a removed environment's zygote are given to be reaped
_REAP_WAIT = 3.0


def dial(host: str, port: int, token: str) -> socket.socket:
    """A channel to the host, introduced by the plugin's token."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(token.encode() + b"\n")
    sock.settimeout(None)
    return sock


def node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def land(shipped: dict[str, Any], fetch: Any) -> dict[str, Any]:
    """A plugin's shipment on this node (``isolation.shipping``): its code (and its
    environment) unpacked in the node's cache, each fetched from Ray's object store
    only when the cache lacks its digest, checked against the digest before it is
    unpacked; returns where its manifest, its scratch directory and its environment
    are on this node."""
    from plugbay.isolation.shipping import NodeCache, node_cache_root

    cache = NodeCache(node_cache_root(node_id()))
    plugin = str(shipped["plugin"])

    def unpacked(kind: str, item: dict[str, Any]) -> Any:
        digest = str(item["digest"])
        if cache.has(kind, digest):
            return cache.path(kind, digest)
        return cache.unpack(kind, digest, fetch(item["ref"][0]), plugin=plugin)

    code = shipped["code"]
    root = unpacked("code", code)
    where: dict[str, Any] = {
        "code_root": str(root),
        "manifest": str(root / code["manifest"]),
        "data_dir": str(cache.scratch(plugin)),
        "environment": None,
    }
    env = shipped.get("env")
    if env is not None:
        where["environment"] = cache.environment(unpacked("env", env), list(env["runtime"]))
    return where


def remap(request: dict[str, Any], shipped: dict[str, Any], where: dict[str, Any]) -> None:
    """A sandboxed worker's view on this node: the shipped code and the node's scratch
    directory in place of the host's plugin and data directories (absent here)."""
    policy = request.get("sandbox", {}).get("policy")
    if policy is None:
        return
    swap = {shipped["host_code"]: where["code_root"], shipped["host_data"]: where["data_dir"]}
    policy["read_paths"] = [swap.get(p, p) for p in policy["read_paths"]]
    policy["write_paths"] = [swap.get(p, p) for p in policy["write_paths"]]


def _stacks_of_this_process() -> str:
    frames = sys._current_frames()
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in frames.items():
        out.append(f"Thread {names.get(ident, ident)}:\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(out)


class PluginActor:
    """A trusted plugin as a bare Ray actor: this process is its worker (no sandbox)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    def serve(
        self, host: str, port: int, token: str, shipped: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Take the plugin's shipped code, dial the host and run the worker runtime on the
        channel; returns where it runs (and where its code and scratch directory are)."""
        import ray

        from plugbay.isolation import worker

        where = land(shipped, ray.get) if shipped is not None else {}
        sock = dial(host, port, token)
        fd = sock.detach()

        def run() -> None:
            # until the host says goodbye or goes away; the host then ends the actor
            asyncio.run(worker._run(fd, []))

        self._thread = threading.Thread(target=run, name="plugbay-worker", daemon=True)
        self._thread.start()
        return {**where, "pid": os.getpid(), "node": node_id()}

    def usage(self, pid: int) -> dict[str, Any]:
        from plugbay.isolation._process_parts import process_usage

        return {**process_usage(os.getpid()), "node": node_id()}

    def here(self) -> bool:
        """Answered by Ray's thread of this process, whatever its plugin's loop is doing
        (``isolation._far_end``)."""
        return True

    def stacks(self, pid: int) -> str:
        return _stacks_of_this_process()


class NodeAgent:
    """One per node: forks sandboxed workers from a zygote here and relays their channels.

    An async actor: every method runs on its event loop (spawns, relays, reaping)."""

    def __init__(self) -> None:
        from plugbay.isolation.zygote import Child, Zygote

        self.zygote = Zygote()
        #: one zygote per plugin environment (by its site-packages), started on first use
        self.env_zygotes: dict[str, Zygote] = {}
        #: each environment by the host's name for it (its site-packages there) → the key
        #: of its zygote here (this node's copy of it, when shipped)
        self._env_keys: dict[str, str] = {}
        #: pid → its cgroup (removed once it exits) and how it ended
        self._cgroups: dict[int, str | None] = {}
        self._ended: dict[int, tuple[int, int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listeners: dict[int, Any] = {}
        self._zygotes: dict[int, Zygote] = {}
        #: pid → what signals that worker (its pidfd), until its exit is known
        self._children: dict[int, Child] = {}
        self._exits: dict[int, asyncio.Event] = {}
        #: denials the kernel layer (seccomp's listener) answered here, for the host:
        #: (worker pid, event), taken by ``reports``; bounded, the excess counted
        self._reports: list[tuple[int, dict[str, Any]]] = []
        self._reported = asyncio.Event()
        self.reports_dropped = 0

    async def ready(self) -> dict[str, Any]:
        from plugbay.isolation._ray_cgroups import sweep_ended_agents

        # an agent killed outright left its workers' cgroups: the first agent after it
        # removes the empty ones (``isolation._ray_cgroups``)
        await asyncio.to_thread(sweep_ended_agents)
        await self.zygote.start()
        return {"node": node_id(), "pid": os.getpid(), "zygote": self.zygote.pid}

    async def here(self) -> bool:
        """The node is there, whatever its workers' loops are doing (``isolation._far_end``)."""
        return True

    async def spawn(
        self,
        request: dict[str, Any],
        host: str,
        port: int,
        token: str,
        environment: EnvironmentPaths | None = None,
        shipped: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Land the plugin's shipped code (and environment) on this node, fork a worker
        as ``request`` says (sandboxed or not; from its own environment's zygote when it
        has one), dial the host for it and relay its channel; returns its pid, its node
        and where its code and scratch directory are here."""
        import ray

        from plugbay.isolation._process_parts import receive_listener
        from plugbay.isolation._ray_cgroups import name_by_agent
        from plugbay.isolation.seccomp_notify import SeccompListener
        from plugbay.isolation.zygote import Zygote

        where: dict[str, Any] = {}
        named = environment.site_packages if environment is not None else None
        if shipped is not None:
            where = await asyncio.to_thread(land, shipped, ray.get)
            remap(request, shipped, where)
            environment = where.pop("environment") or environment
        loop = asyncio.get_running_loop()
        zygote = self.zygote
        if environment is not None:
            zygote = self.env_zygotes.setdefault(environment.site_packages, Zygote(environment))
            self._env_keys[named or environment.site_packages] = environment.site_packages
        if "sandbox" in request:
            name_by_agent(request)  # the host's pid means nothing on this node
            child, sock, report = await zygote.spawn_sandboxed(request)
            pid = child.pid
            listener, _probe = await asyncio.to_thread(receive_listener, report)
            if listener is not None:  # answered here; the worker's guard tells the host
                seccomp = SeccompListener(listener, functools.partial(self._kernel_denial, pid))
                seccomp.start(loop)
                self._listeners[pid] = seccomp
        else:
            child, sock = await zygote.spawn(request)
            pid = child.pid
            listener = None
        self._children[pid] = child
        self._cgroups[pid] = request.get("sandbox", {}).get("cgroup")
        self._zygotes[pid] = zygote
        try:
            remote = await asyncio.to_thread(dial, host, port, token)
        except OSError:
            sock.close()
            self.kill(pid)
            raise
        relay = loop.create_task(self._relay(pid, sock, remote))
        self._tasks.add(relay)
        relay.add_done_callback(self._tasks.discard)
        reaper = loop.create_task(self._reap(pid))
        self._tasks.add(reaper)
        reaper.add_done_callback(self._tasks.discard)
        kernel = ["seccomp"] if listener is not None else []
        return {**where, "pid": pid, "node": node_id(), "kernel_reports": kernel}

    def _kernel_denial(self, pid: int, event: dict[str, Any]) -> None:
        if len(self._reports) >= 1000:  # the host's bounds count what reaches it
            self.reports_dropped += 1
            return
        self._reports.append((pid, event))
        self._reported.set()

    async def reports(self) -> list[tuple[int, dict[str, Any]]]:
        """The kernel's denials since the last call (waits for one): the host long-polls."""
        await self._reported.wait()
        self._reported.clear()
        taken, self._reports = self._reports, []
        return taken

    async def _relay(self, pid: int, worker: socket.socket, host: socket.socket) -> None:
        """Bytes both ways until either end closes; then both are closed."""
        worker.setblocking(False)
        host.setblocking(False)
        w_reader, w_writer = await asyncio.open_connection(sock=worker)
        h_reader, h_writer = await asyncio.open_connection(sock=host)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(1 << 16):
                    writer.write(data)
                    if writer.transport.get_write_buffer_size() > 1 << 20:
                        await writer.drain()

        ways = [asyncio.ensure_future(pipe(w_reader, h_writer)),
                asyncio.ensure_future(pipe(h_reader, w_writer))]  # fmt: skip
        try:
            await asyncio.wait(ways, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for way in ways:
                way.cancel()
            for writer in (h_writer, w_writer):
                writer.close()

    async def _reap(self, pid: int) -> None:
        """When the worker exits: how (wait status, OOM kills), then its cgroup is removed."""
        from plugbay.isolation._cgroups import CgroupLayer

        zygote = self._zygotes[pid]
        status = await asyncio.shield(zygote.exited(pid))
        self._children.pop(pid).close()
        listener = self._listeners.pop(pid, None)
        if listener is not None:
            listener.close()
        oom = 0
        cgroup = self._cgroups.pop(pid, None)
        if cgroup is not None:
            group = CgroupLayer(cgroup)
            oom = group.oom_kills()
            with contextlib.suppress(OSError):
                await asyncio.to_thread(group.remove)
        self._ended[pid] = (status, oom)
        while len(self._ended) > 1024:  # nobody asked how these ended (a plain release)
            self._exits.pop(next(iter(self._ended)), None)
            self._ended.pop(next(iter(self._ended)))
        self._exited(pid).set()
        zygote.forget(pid)
        del self._zygotes[pid]

    async def exit_status(self, pid: int, wait: float = 0.5) -> tuple[int, int] | None:
        """``(wait status, OOM kills)`` of a worker that ended (waits up to ``wait``)."""
        if pid not in self._ended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited(pid).wait(), wait)
        self._exits.pop(pid, None)
        return self._ended.pop(pid, None)

    def _exited(self, pid: int) -> asyncio.Event:
        return self._exits.setdefault(pid, asyncio.Event())

    def kill(self, pid: int) -> None:
        """End one of this agent's workers (never another process)."""
        child = self._children.get(pid)
        if child is not None:
            child.kill()

    def usage(self, pid: int) -> dict[str, Any]:
        from plugbay.isolation._process_parts import process_usage

        if pid not in self._cgroups:
            return {"pid": pid, "error": "not a worker of this node's agent", "node": node_id()}
        return {**process_usage(pid), "node": node_id()}

    async def stacks(self, pid: int) -> str:
        from plugbay.isolation.diagnostics import read_stacks

        if pid not in self._cgroups:
            return f"(worker {pid} is not running on this node)"
        text, _seen = await asyncio.to_thread(read_stacks, pid)
        return text

    async def workers(self) -> list[int]:
        return sorted(self._cgroups)

    async def environments(self) -> dict[str, int | None]:
        """The zygote running here for each environment, by the host's name for it: its pid."""
        return {named: self.env_zygotes[key].pid for named, key in self._env_keys.items()}

    async def forget_environment(self, path: str) -> list[int]:
        """The host removed the environment at ``path`` (``plugbay uninstall``, ``plugbay
        env gc``; its path on the host): stop its zygote here once the workers it forked
        are reaped (bounded: they are stopping, no plugin version uses it), as the process
        backend does on the host's machine. Returns the pids of the zygotes stopped."""
        gone = {named for named in self._env_keys if Path(named).is_relative_to(path)}
        keys = {self._env_keys.pop(named) for named in gone}
        stopped = []
        for key in keys - set(self._env_keys.values()):  # a copy another one names stays
            zygote = self.env_zygotes.pop(key, None)
            if zygote is None:
                continue
            reaped = [
                asyncio.ensure_future(self._exited(pid).wait())
                for pid, forked_by in self._zygotes.items()
                if forked_by is zygote
            ]
            if reaped:
                _done, waiting = await asyncio.wait(reaped, timeout=_REAP_WAIT)
                for wait in waiting:
                    wait.cancel()
            pid = zygote.pid
            await zygote.stop()
            if pid is not None:
                stopped.append(pid)
        return stopped

    async def close(self) -> None:
        for pid in list(self._cgroups):
            self.kill(pid)
        for zygote in [self.zygote, *self.env_zygotes.values()]:
            await zygote.stop()
