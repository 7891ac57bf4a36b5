"""The Ray backend: plugins placed on a Ray cluster's nodes, with the process backend's guarantees.

Ray does placement and lifecycle: which node has the resources a manifest asks
for (``num-cpus``, ``num-gpus``, ``memory``, custom node resources, node labels),
starting and ending the processes there, and telling when a node is gone.
Everything else stays the host's: the manager checks types, timeouts and
metrics; the broker answers every request from a remote plugin; swaps move
state; the supervisor restarts a crashed plugin.

How a plugin runs there (``isolation._ray_agent``)
--------------------------------------------------
* A plugin the policy **trusts** runs as a **bare actor** (``[ray] bare-actors``):
  the actor's process is its worker, with no sandbox.
* Any other runs in a **sandboxed worker** forked by its **node's plugbay agent**
  (one actor per node, ``num_cpus=0``), from a zygote on that node, with every
  layer and limit it would have on the host's machine. Its resources are
  reserved by a placement group of one bundle, whose node is the agent's.
  A plugin that asks for no resources is spread over the alive nodes by plugbay.

Either way, the remote end dials the host's channel listener (``[ray] listen``)
and presents the plugin's one-time token; the channel then carries the process
backend's frames, so a Ray handle *is* a process handle whose worker is far
away (:class:`RayHandle`). The data path is plugbay's own (a TCP stream of
msgspec frames), not an actor method per call: a call costs one round trip on
the wire, below Ray's own actor call (``bench``).

Failures
--------
A worker, actor or node that ends closes its channel (or stops answering the
heartbeat, 1 s; while a ``def`` command holds it, its node stops answering Ray:
``isolation._far_end``): every call in flight fails with ``PluginCrashed`` at once and
the supervisor restarts the plugin after its backoff, on an alive node (a node
whose plugin was lost is avoided for a while). A sandboxed worker's end is
diagnosed by its agent as on this machine (an OOM kill is a
``ResourceLimitExceeded``).

Code and data (no shared file system)
-------------------------------------
A node needs nothing of the host's disks. The plugin's directory (and its own
Python environment, if it has one) is shipped as an archive named by its SHA-256
through Ray's object store; the node unpacks it into its own cache once, checks
the digest first, and the worker imports it from there (``isolation.shipping``).
A sandboxed worker's view holds that copy and a scratch directory of the node,
never the host's plugin or state directories. ``context.storage`` is kept by the
host: every operation is a host call on the plugin's channel that the broker
answers in the plugin's name (``isolation.remote_storage``), so a plugin that
moves to another node finds its data; nothing acknowledged lives only on a node
(``docs/scale-out.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugbay.api import PluginContext
from plugbay.api.errors import PlugbayError, PluginCrashed, PluginLoadError
from plugbay.isolation._far_end import FarEnd
from plugbay.isolation._process_parts import bound_file_size, worker_request
from plugbay.isolation._ray_agent import NodeAgent, PluginActor
from plugbay.isolation._ray_channels import Channels
from plugbay.isolation._ray_data import RayData
from plugbay.isolation._ray_fit import NodeTotals
from plugbay.isolation._ray_join import (
    forget_local,
    join,
    keep_fault_handlers,
    leave_for_stop,
    listen,
    unreachable,
)
from plugbay.isolation._ray_paths import HostPaths
from plugbay.isolation._ray_status import look_at_cluster
from plugbay.isolation._ray_stop import headless_stop
from plugbay.isolation.base import Backend, EnvironmentPaths
from plugbay.isolation.inline import run_in_daemon_thread
from plugbay.isolation.policy import Placement
from plugbay.isolation.process import HostCallHandler
from plugbay.isolation.quota import QuotaMounts
from plugbay.isolation.ray_head import (
    HeadWatch,
    fail_for_lost_head,
    refuse_without_head,
)
from plugbay.isolation.ray_nodes import ClusterNodes
from plugbay.isolation.ray_settings import RaySettings
from plugbay.isolation.shipping import ShipmentRefused
from plugbay.isolation.zygote import Child
from plugbay.model.manifest import PluginManifest

__all__ = ["RayBackend", "RayHandle", "keep_fault_handlers"]

log = logging.getLogger("plugbay.isolation.ray")

#: seconds a node whose plugin was lost is passed over when placing a plugin
_AVOID_LOST_NODE = 30.0
#: seconds a cluster that could not be joined is not asked again (each start is told why)
_JOIN_AGAIN = 10.0
#: seconds a node's agent is given to stop a removed environment's zygote (its workers'
#: reaping, then the zygote's own stop)
_FORGET_WAIT = 10.0


def _ray() -> Any:
    """The ``ray`` module (an optional extra: ``pip install 'plugbay[ray]'``)."""
    try:
        with keep_fault_handlers():
            return importlib.import_module("ray")
    except ImportError:
        raise PlugbayError(
            "the Ray backend needs Ray, which is not installed",
            hint="pip install 'plugbay[ray]' (or remove [ray] from the host config)",
        ) from None


class RayBackend(Backend):
    """Starts plugins on a Ray cluster; see the module docstring."""

    name = "ray"

    def __init__(
        self,
        host_call: HostCallHandler,
        settings: Callable[[], RaySettings | None],
        *,
        quotas: QuotaMounts | None = None,
    ) -> None:
        self._host_call = host_call
        self._settings = settings
        self._connected = False
        #: the backend started the cluster (address "local") or connected itself
        self._owns_connection = False
        self._connect_lock = asyncio.Lock()
        self._channels: Channels | None = None
        #: the node agents (node id → actor), one per node that runs a sandboxed plugin
        self._agents: dict[str, Any] = {}
        self._agent_locks: dict[str, asyncio.Lock] = {}
        #: plugins placed by plugbay itself on each node (for spreading), and lost nodes
        self._placed: dict[str, int] = {}
        #: plugins being placed on each node plugbay chose (``_pick_node``), not yet placed
        self._placing: dict[str, int] = {}
        self._lost: dict[str, float] = {}
        self._handles: set[RayHandle] = set()
        self._remote_classes: dict[str, Any] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self.temp_dir: str | None = None
        #: the node of a private cluster (``local``): its cache goes when the cluster stops
        self._local_node: str | None = None
        #: what a plugin takes to its node and keeps here: its code, its environment, its
        #: store (``isolation._ray_data``)
        self.data = RayData(quotas)
        #: the cluster's node table for the dashboard and the API (``isolation.ray_nodes``)
        self.node_table = ClusterNodes()
        #: each resource's largest node total seen: a request above it is refused at once
        self._totals = NodeTotals()
        #: (why, when) once the cluster's head is lost (``isolation.ray_head``), else None
        self.head_lost: tuple[str, float] | None = None
        self._head: HeadWatch | None = None
        #: why the cluster could not be joined, and when (asked again after a while)
        self._refused: tuple[PlugbayError, float] | None = None

    @property
    def connected(self) -> bool:
        """Whether the host has joined the cluster (on the first plugin placed there)."""
        return self._connected

    @property
    def settings(self) -> RaySettings:
        settings = self._settings()
        if settings is None:
            raise PlugbayError(
                "a plugin was placed on Ray, and the host config has no [ray] table",
                hint='add [ray] address = "local" (or "auto", or "HOST:PORT") to the host config',
            )
        return settings

    # -- the cluster ----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to the cluster (``local``: start a private one) on first use."""
        async with self._connect_lock:
            if self._connected:
                return
            refused = self._refused
            if refused is not None and time.monotonic() - refused[1] < _JOIN_AGAIN:
                raise refused[0]  # the plugins starting side by side are told at once
            settings = self.settings
            ray = _ray()
            channels = listen(settings.listen, settings.origin)  # before joining Ray
            if not ray.is_initialized():
                try:
                    await asyncio.to_thread(self._init, ray, settings)
                except BaseException as exc:
                    channels.close()
                    if isinstance(exc, PlugbayError):
                        self._refused = (exc, time.monotonic())
                    raise
                self._owns_connection = True
            self._channels = channels
            self._channels.start()
            self._connected = True
            self._head = HeadWatch(ray.get_runtime_context().gcs_address, self._lost_head)
            self._head.start()

    def _lost_head(self, reason: str) -> None:
        """The head is gone: every Ray plugin fails now, and Ray is no longer asked."""
        self.head_lost = (reason, time.time())
        for handle in list(self._handles):
            fail_for_lost_head(handle, reason)

    def _init(self, ray: Any, settings: RaySettings) -> None:
        self.temp_dir, self._local_node = join(ray, settings)

    def _remote(self, cls: type) -> Any:
        made = self._remote_classes.get(cls.__name__)
        if made is None:
            made = self._remote_classes[cls.__name__] = _ray().remote(cls)
        return made

    async def nodes(self) -> list[dict[str, Any]]:
        """The cluster's alive nodes: id, address, resources, and plugbay's plugins there."""
        ray = _ray()
        found = await asyncio.to_thread(ray.nodes)
        return [
            {
                "node": n["NodeID"],
                "address": n.get("NodeManagerAddress"),
                "resources": n.get("Resources", {}),
                "labels": n.get("Labels", {}),
                "plugins": sorted(
                    h.manifest.id for h in self._handles if h.node == n["NodeID"] and not h.gone
                ),
            }
            for n in found
            if n.get("Alive")
        ]

    async def _pick_node(self) -> str:
        """The alive node with the fewest plugins plugbay placed or is placing there (a lost
        one is avoided). The pick counts until ``_picked_done``: plugins that start side by
        side (the host's start) are spread too, not all sent to the same node."""
        now = time.monotonic()
        alive = [n["node"] for n in await self.nodes()]
        fresh = [n for n in alive if now - self._lost.get(n, -_AVOID_LOST_NODE) >= _AVOID_LOST_NODE]
        choices = fresh or alive
        if not choices:
            gcs = self._head.address if self._head is not None else None
            raise PlugbayError(
                "the Ray cluster has no alive node", hint=look_at_cluster(self.settings, gcs)
            )
        load = {n: self._placed.get(n, 0) + self._placing.get(n, 0) for n in choices}
        node = str(min(choices, key=lambda n: (load[n], n)))
        self._placing[node] = self._placing.get(node, 0) + 1
        return node

    def _picked_done(self, node: str | None) -> None:
        """A start on a node ``_pick_node`` chose is over (placed, then counted, or failed)."""
        if node is not None and self._placing.get(node, 0) > 0:
            self._placing[node] -= 1

    def node_lost(self, node: str) -> None:
        """A plugin on ``node`` was lost: pass the node over for a while."""
        self._lost[node] = time.monotonic()
        self._agents.pop(node, None)

    # -- starting a plugin ----------------------------------------------------------------

    async def start(
        self,
        manifest: PluginManifest,
        placement: Placement | None = None,
        data_dir: Path | None = None,
        environment: EnvironmentPaths | None = None,
    ) -> RayHandle:
        """Place the plugin on a node (a bare actor, or a worker of the node's agent), wait
        for its channel, and open it; ``initialize`` is separate."""
        if placement is None or placement.isolation != "ray":
            raise PlugbayError("the Ray backend was given a plugin not placed on Ray",
                               plugin=manifest.id)  # fmt: skip
        try:
            await self.connect()
        except PlugbayError as exc:  # said in the plugin's name: its start is what failed
            raise PluginLoadError(
                exc.message, plugin=manifest.id, where=exc.where, hint=exc.hint
            ) from None
        assert self._channels is not None
        await refuse_without_head(self._head, self.head_lost, manifest.id)
        # more than any node has: said now, not after start-timeout
        await self._totals.check(self.node_table, _ray(), manifest, placement)
        shipped = await self.data.ship(manifest, data_dir, environment)
        token, channel = self._channels.expect()
        try:
            async with asyncio.timeout(self.settings.start_timeout):
                # a plugin with its own Python environment runs from that environment's
                # zygote on its node (the agent's), even when trusted: not sandboxed then
                if placement.ray.get("mode") == "actor" and environment is None:
                    handle = await self._start_actor(
                        manifest, placement, data_dir, token, channel, shipped
                    )
                else:
                    handle = await self._start_in_agent(
                        manifest, placement, data_dir, token, channel, environment, shipped
                    )
        except TimeoutError:
            raise PluginLoadError(
                f"no node of the Ray cluster took it within {self.settings.start_timeout:g} s",
                plugin=manifest.id,
                hint="the cluster may have no node with the resources its manifest asks for "
                f"({_asked(placement)}); 'plugbay nodes' lists what each node has",
                details={"transient": True},  # a restart tries again (its node may return)
            ) from None
        except Exception as exc:
            # a node's refusal (a shipment that does not match its digest) is a plugbay
            # error raised there: the host says it as it was said, not as Ray's wrapper
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ShipmentRefused):  # the next start ships it anew
                self.data.refused(cause)
            if isinstance(cause, PlugbayError):
                cause.plugin = cause.plugin or manifest.id  # said on its node, for it
                raise cause from None
            if isinstance(cause, OSError) and self._channels is not None:  # its dial back
                said = unreachable(self.settings, self._channels.port, cause)
                raise PluginLoadError(
                    said.message, plugin=manifest.id, where=said.where, hint=said.hint
                ) from None
            raise
        finally:
            self._channels.forget(token)
        self._handles.add(handle)
        handle.host_manifest = manifest  # its own error names the host's files
        self._placed[handle.node] = self._placed.get(handle.node, 0) + 1
        if data_dir is not None:  # its store is kept here, wherever it runs
            await self.data.keep_store(handle, placement, data_dir)
        await handle.open()
        return handle

    def _options(self, placement: Placement) -> dict[str, Any]:
        asked = placement.ray
        options: dict[str, Any] = {"num_cpus": asked.get("num_cpus", 0), "max_restarts": 0}
        if asked.get("num_gpus"):
            options["num_gpus"] = asked["num_gpus"]
        if asked.get("memory"):
            options["memory"] = asked["memory"]
        if asked.get("resources"):
            options["resources"] = dict(asked["resources"])
        if asked.get("labels"):
            options["label_selector"] = dict(asked["labels"])
        return options

    def _constrained(self, placement: Placement) -> bool:
        """Whether Ray must choose the node (it asks for resources or labels)."""
        asked = placement.ray
        return bool(
            asked.get("num_cpus") or asked.get("num_gpus") or asked.get("memory")
            or asked.get("resources") or asked.get("labels")
        )  # fmt: skip

    async def _start_actor(
        self,
        manifest: PluginManifest,
        placement: Placement,
        data_dir: Path | None,
        token: str,
        channel: asyncio.Future[socket.socket],
        shipped: dict[str, Any],
    ) -> RayHandle:
        ray = _ray()
        options = self._options(placement)
        picked = None
        if not self._constrained(placement):
            picked = await self._pick_node()
            options["scheduling_strategy"] = _affinity(picked, soft=True)
        assert self._channels is not None
        actor = None
        try:
            actor = self._remote(PluginActor).options(**options).remote()
            where = await actor.serve.remote(
                self._channels.address, self._channels.port, token, shipped
            )
            sock = await channel
        except BaseException:
            with contextlib.suppress(Exception):
                if actor is not None:
                    ray.kill(actor, no_restart=True)
            raise
        finally:
            self._picked_done(picked)
        return RayHandle(
            _landed(manifest, where), where["pid"], sock, self._host_call, placement=placement,
            data_dir=data_dir, backend=self, node=where["node"], actor=actor,
            node_data_dir=where["data_dir"],
        )  # fmt: skip

    async def _start_in_agent(
        self,
        manifest: PluginManifest,
        placement: Placement,
        data_dir: Path | None,
        token: str,
        channel: asyncio.Future[socket.socket],
        environment: EnvironmentPaths | None,
        shipped: dict[str, Any],
    ) -> RayHandle:
        ray = _ray()
        request = worker_request(manifest, placement, data_dir)
        quota = placement.limits.get("storage")
        if "sandbox" in request and quota is not None:
            bound_file_size(request, int(quota))  # the quota is sampled (no image remotely)
        group = picked = None
        if self._constrained(placement):
            group, node = await self._reserve(placement)
        else:
            node = picked = await self._pick_node()
        try:
            agent = await self._agent(node)
            assert self._channels is not None
            where = await agent.spawn.remote(
                request, self._channels.address, self._channels.port, token, environment, shipped
            )
            sock = await channel
        except BaseException as exc:
            if group is not None:
                with contextlib.suppress(Exception):
                    _placement_groups().remove_placement_group(group)
            if isinstance(exc, ray.exceptions.RayActorError):
                self.node_lost(node)
                raise PluginCrashed(
                    f"its node's plugbay agent ended while starting it (node {node[:12]}): "
                    f"{_ray_words(exc)}",
                    plugin=manifest.id,
                    hint="a restart tries again on an alive node; 'plugbay enable "
                    f"{manifest.id}' starts it again if it failed",
                    details={"transient": True},
                ) from None
            raise
        finally:
            self._picked_done(picked)
        return RayHandle(
            _landed(manifest, where), where["pid"], sock, self._host_call, placement=placement,
            data_dir=data_dir, backend=self, node=where["node"], agent=agent, group=group,
            kernel_reports=where.get("kernel_reports", []), node_data_dir=where["data_dir"],
        )  # fmt: skip

    async def _reserve(self, placement: Placement) -> tuple[Any, str]:
        """A placement group of one bundle holding what the plugin asks for; its node."""
        pg = _placement_groups()
        options = self._options(placement)
        bundle: dict[str, float] = {}
        if options.get("num_cpus"):
            bundle["CPU"] = options["num_cpus"]
        if options.get("num_gpus"):
            bundle["GPU"] = options["num_gpus"]
        if options.get("memory"):
            bundle["memory"] = options["memory"]
        bundle |= options.get("resources", {})
        if not bundle:  # labels alone: a token of CPU, so the bundle is not empty
            bundle["CPU"] = 0.001
        labels = [options["label_selector"]] if "label_selector" in options else None
        kwargs: dict[str, Any] = {"strategy": "PACK"}
        if labels:
            kwargs["bundle_label_selector"] = labels
        group = pg.placement_group([bundle], **kwargs)
        try:
            await group.ready()
            table = await asyncio.to_thread(pg.placement_group_table, group)
        except BaseException:
            with contextlib.suppress(Exception):
                pg.remove_placement_group(group)
            raise
        return group, str(table["bundles_to_node_id"][0])

    async def _agent(self, node: str) -> Any:
        """The node's plugbay agent, started on first use (pinned to the node)."""
        lock = self._agent_locks.setdefault(node, asyncio.Lock())
        async with lock:
            agent = self._agents.get(node)
            if agent is None:
                agent = (
                    self._remote(NodeAgent)
                    .options(
                        num_cpus=0,
                        max_restarts=0,
                        max_concurrency=10_000,
                        scheduling_strategy=_affinity(node, soft=False),
                    )
                    .remote()
                )
                await agent.ready.remote()
                self._agents[node] = agent
                task = asyncio.get_running_loop().create_task(self._kernel_reports(node, agent))
                self._watchers.add(task)
                task.add_done_callback(self._watchers.discard)
            return agent

    async def _kernel_reports(self, node: str, agent: Any) -> None:
        """The denials a node's kernel layer answered (seccomp's listener, in its agent),
        to the plugin whose worker made them, as on this machine."""
        while True:
            try:
                batch = await agent.reports.remote()
            except Exception:  # the agent is gone (its node, or the host is closing)
                return
            for pid, event in batch:
                for handle in list(self._handles):
                    if handle.node == node and handle.pid == pid and handle._agent is agent:
                        handle._report(event)

    def forget(self, handle: RayHandle) -> None:
        if handle in self._handles:
            self._handles.discard(handle)
            self._placed[handle.node] = max(0, self._placed.get(handle.node, 1) - 1)
            self.data.release_store(handle)

    async def forget_environment(self, path: Path) -> None:
        """Each node's agent stops the zygote it runs for the environment the host removed
        at ``path``, once the workers it forked there are reaped; a node that does not
        answer is passed over (its agent's zygotes end with it)."""
        for node, agent in list(self._agents.items()):
            try:
                stopped = await asyncio.wait_for(
                    agent.forget_environment.remote(str(path)), _FORGET_WAIT
                )
            except Exception as exc:
                log.debug("node %s did not stop the zygote of %s: %s", node[:12], path, exc)
                continue
            if stopped:
                log.debug("node %s stopped the zygote of %s: %s", node[:12], path, stopped)

    async def close(self) -> None:
        """Release every handle, end the agents, and leave the cluster (``local``: stop it)."""
        for handle in list(self._handles):
            handle.release()
        for task in list(self._watchers):
            task.cancel()
        await self.data.released()
        if self._head is not None:
            self._head.stop()
        if self._connected and self.head_lost is not None:
            await self._leave_headless()
        elif self._connected:
            ray = _ray()
            for agent in list(self._agents.values()):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(agent.close.remote(), 3)
                with contextlib.suppress(Exception):
                    ray.kill(agent, no_restart=True)
            self._agents.clear()
            if self._owns_connection:
                await asyncio.to_thread(leave_for_stop, ray, self.settings, self.temp_dir)
                await self._forget_local()
        if self._channels is not None:
            self._channels.close()
            self._channels = None
        self.data.close()
        self._connected = self._owns_connection = False

    async def _leave_headless(self) -> None:
        """Leave a cluster whose head is gone: no agent or actor can be asked to end (their
        nodes end them), and leaving is bounded (in a thread of its own if Ray waits)."""
        self._agents.clear()
        log.warning(headless_stop(self.settings, self.head_lost))
        if self._owns_connection:
            ray = _ray()
            # Ray's own wait is given up after 10 s (its token variables put back all the
            # same), a failure logged: the host goes on
            await run_in_daemon_thread(
                lambda: leave_for_stop(ray, self.settings, self.temp_dir, within=10)
            )
            await self._forget_local()

    async def _forget_local(self) -> None:
        """A private cluster stopped: its temp directory (unless the operator named it) and
        its node's cache go (``isolation._ray_join``)."""
        made = self.temp_dir if self.settings.temp_dir is None else None
        await asyncio.to_thread(forget_local, made, self._local_node)
        if made is not None:
            self.temp_dir = None
        self._local_node = None


def _affinity(node: str, *, soft: bool) -> Any:
    strategies = importlib.import_module("ray.util.scheduling_strategies")
    return strategies.NodeAffinitySchedulingStrategy(node_id=node, soft=soft)


def _placement_groups() -> Any:
    return importlib.import_module("ray.util.placement_group")


def _landed(manifest: PluginManifest, where: dict[str, Any]) -> PluginManifest:
    """The manifest as its node has it: its file in the node's copy of the code (what the
    worker loads; the host keeps its own)."""
    return dataclasses.replace(manifest, path=Path(where["manifest"]))


def _ray_words(exc: BaseException) -> str:
    """Ray's own sentences for an error (not its indented fields), at most 300 characters."""
    said = " ".join(s.strip() for s in str(exc).splitlines() if s.strip() and s[0] not in " \t")
    return (said or type(exc).__name__)[:300]


def _asked(placement: Placement) -> str:
    asked = {k: v for k, v in placement.ray.items() if k != "mode" and v}
    return ", ".join(f"{k} {v}" for k, v in asked.items()) or "nothing"


class RayHandle(HostPaths):
    """A plugin on a Ray node: a process handle whose worker is far away. Its pid is on
    its node; its figures and stacks are read there; it is ended through Ray."""

    def __init__(
        self,
        manifest: PluginManifest,
        pid: int,
        sock: socket.socket,
        host_call: HostCallHandler,
        *,
        placement: Placement | None,
        data_dir: Path | None,
        backend: RayBackend,
        node: str,
        actor: Any = None,
        agent: Any = None,
        group: Any = None,
        kernel_reports: list[str] | None = None,
        node_data_dir: str | None = None,
    ) -> None:
        # its pid is its node's: nothing on this machine is signalled or placed by it
        remote = Child(pid)
        remote.close()
        super().__init__(manifest, remote, sock, host_call, placement=placement, data_dir=data_dir)
        #: its directory on its node (``context.environment.data_dir`` there: scratch)
        self.node_data_dir = node_data_dir
        #: its store is kept by the host (``isolation.remote_storage``), counted there
        self.kept_store = False
        #: the layers whose denials the node's agent reports (the guard leaves them to it)
        self.kernel_reports = list(kernel_reports or [])
        self.backend = backend
        #: the Ray node it runs on (``plugbay info``, the ``node`` label of its metrics)
        self.node = node
        #: "actor": a bare actor (trusted); "agent": a worker of the node's agent
        self.mode = "actor" if actor is not None else "agent"
        self._actor = actor
        self._agent = agent
        self._group = group
        self.gone = False
        #: its manifest as the host has it (its own error names the host's files)
        self.host_manifest: PluginManifest | None = None
        #: its node, asked while a def command holds the heartbeat (``isolation._far_end``)
        self._far = FarEnd(lambda: self._target().here.remote())

    def _node_gone(self) -> None:
        self.backend.node_lost(self.node)

    async def initialize(self, context: PluginContext, timeout: float) -> None:
        """As a local worker, with its node's scratch directory as its data directory (the
        host's is not there; its store is the host's)."""
        if self.node_data_dir is not None:
            env = dataclasses.replace(context.environment, data_dir=Path(self.node_data_dir))
            context = dataclasses.replace(context, environment=env)
        await super().initialize(context, timeout)  # a failure names the host's file (_failed)

    def location(self) -> dict[str, Any]:
        """Where it runs, for ``plugbay info``, the dashboard and its metrics' ``node``."""
        return {
            "backend": "ray",
            "node": self.node,
            "mode": self.mode,
            "pid": self.pid,
            "sandboxed": bool(self.placement and self.placement.sandboxed),
            "code": str(self.manifest.path.parent) if self.manifest.path else None,
            "storage": "host" if self.storage_at == "host" else "node",
        }

    def _rules(self) -> dict[str, Any]:
        rules = super()._rules()
        if rules:
            rules["kernel_reports"] = self.kernel_reports
        return rules

    def _lost(self, reason: str | None, protocol_error: bool) -> None:
        if protocol_error or self._dead is not None or self._closing:
            super()._lost(reason, protocol_error)
            return
        task = asyncio.get_running_loop().create_task(self._diagnose_remote(reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _diagnose_remote(self, reason: str | None) -> None:
        """How it ended: a sandboxed worker's wait status from its agent (then as on this
        machine: a limit it hit is named); else its actor or node is gone."""
        if self._agent is not None:
            try:
                ended = await asyncio.wait_for(self._agent.exit_status.remote(self.pid), 0.8)
            except Exception:  # the agent is gone with its node, or does not answer
                ended = None
            if ended is not None:
                status, self._oom_kills = ended
                self._exit = asyncio.get_running_loop().create_future()
                self._exit.set_result(status)
                await self._diagnose(reason)
                return
        if self._agent is not None:  # the agent is gone: so is its node, most likely
            self.backend.node_lost(self.node)
        what = "bare actor" if self._actor is not None else "node's plugbay agent"
        self._crashed(
            f"its Ray {what} on node {self.node[:12]} ended (the process or its node is gone)",
            error=PluginCrashed(
                f"its Ray {what} on node {self.node[:12]} ended (the process or its node is gone)",
                plugin=self.manifest.id,
                hint="the supervisor restarts it on an alive node after its backoff",
                details={"node": self.node, "pid": self.pid, "reason": reason or ""},
            ),
        )

    def _kill(self) -> None:
        """End the remote worker through Ray (never a signal to a pid on this machine)."""
        if self.gone:
            return
        self.gone = True
        self._far.stop()
        if self.backend.head_lost is not None:  # nobody to ask: its node ends it
            self._group = None
            self.backend.forget(self)
            return
        with contextlib.suppress(Exception):
            if self._actor is not None:
                _ray().kill(self._actor, no_restart=True)
            elif self._agent is not None:
                self._agent.kill.remote(self.pid)
        if self._group is not None:  # a call to the head: never on the loop
            group, pg = self._group, _placement_groups()
            with contextlib.suppress(RuntimeError):  # (its error is the thread's own)
                run_in_daemon_thread(lambda: pg.remove_placement_group(group))
            self._group = None
        self.backend.forget(self)

    def _target(self) -> Any:
        return self._actor if self._actor is not None else self._agent

    def usage(self) -> dict[str, Any]:
        """What it uses on its node now (read there), with the node's id."""
        if self._dead is not None or self.gone:
            return {"pid": self.pid, "node": self.node, "error": "it is not running"}
        if self.backend.head_lost is not None:
            return {"pid": self.pid, "node": self.node, "error": self.backend.head_lost[0]}
        try:
            figures: dict[str, Any] = _ray().get(self._target().usage.remote(self.pid), timeout=5)
        except Exception as exc:
            return {"pid": self.pid, "node": self.node, "error": f"{type(exc).__name__}: {exc}"}
        if "error" not in figures:
            figures["storage_bytes"] = self.storage_bytes
            figures["storage_quota"] = self.storage.mechanism if self.storage.enforced else None
            figures["sandboxed"] = bool(self.placement and self.placement.sandboxed)
        return figures

    def dump_stacks(self, *, tasks: bool = True) -> str:
        if self.backend.head_lost is not None:
            return f"(the stacks of worker {self.pid}: {self.backend.head_lost[0]})"
        try:
            text: str = _ray().get(self._target().stacks.remote(self.pid), timeout=5)
        except Exception as exc:
            return f"(the stacks of worker {self.pid} on node {self.node[:12]}: {exc})"
        return self._stacks_here(text)  # its plugin's frames: the host's files
