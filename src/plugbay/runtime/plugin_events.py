"""Plugin events: what any plugin emits, delivered to the plugins that listen.

A plugin declares in its manifest the events it emits (``[events] emits``) and
the events it listens to (``[events.listens."NAME"]``: priority, queue bound,
overflow policy); ``plugbay.api._events`` is the plugin's side.

**The sender** is the channel's owner, never a name in the request: an inline
plugin's ``context.events`` is bound to its id, a worker's emit arrives as a
``HostCall`` to ``plugbay.events`` on its own socket and passes the broker. An
event the manifest does not declare is refused (``PermissionDenied`` and a
security event, ``layer = "broker"``); a payload must be a mapping of plain
data of at most :data:`~plugbay.api._events.MAX_PAYLOAD` bytes.

**Delivery** follows priority: each event visits its listeners one after the
other, lowest priority first, each listener handling it (or failing, or timing
out after its call timeout) before the next one sees it. Every listener has a
bounded queue of its own where events wait for it: when it is full, its
declared overflow policy decides (``drop-oldest``: the oldest waiting event is
dropped for this listener; ``drop-newest``: the new one is; ``block``: the
sender waits up to ``block-timeout`` seconds for room, then the new one is
dropped). An event dropped for one listener still goes on to the next ones. A
listener in a worker receives the event through the frames path like a call
(``event:NAME``); its handler's annotation checks the payload there.

**A new version** gets the events that waited for its listener across the swap,
when it listens to them too; one that no longer does is not sent them (counted as
``unheard`` and said in its log, never a failure of the plugin: which events, the
first few by name, for which plugin, one line a swap, then at most one a minute:
``runtime.unheard_log``).

**Lazy plugins**: an event reaches a listener that starts on demand: its
``on-event:NAME`` starts it, any other event waits in its queue until it runs.

**What the log says**: a listener's drops and failures are said at the first, then at
most once a minute (``runtime.log_pace``: a trickle is heard as well as a flood), with
how many were not said since; each is counted in ``stats``.
A listener's queue leaves ``stats`` (and ``/metrics``) once its plugin is unloaded, has
failed (the host gave up on it), or runs a version that does not listen to the event,
after what waited in it is passed on; a plugin loaded or started again listens again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from plugbay.api._events import (
    EVENT_PREFIX,
    MAX_PAYLOAD,
    EmitSink,
    call_handler,
    event_handlers,
    payload_refused,
    payload_size,
)
from plugbay.api.errors import (
    ParameterError,
    PlugbayError,
    PluginCallError,
    PluginStateError,
)
from plugbay.isolation import frames
from plugbay.isolation._process_parts import RemoteSpec
from plugbay.isolation.base import CallTimeout, deadline
from plugbay.model._events import EventListen, describe_events
from plugbay.runtime.log_pace import LogPace
from plugbay.runtime.unheard_log import UnheardLog

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from plugbay.runtime.manager import PluginManager
    from plugbay.runtime.routing import Route

__all__ = ["EVENTS_TARGET", "PluginEvents"]

log = logging.getLogger("plugbay.events")

#: the host-call target a worker's ``context.events.emit`` goes to (through the broker)
EVENTS_TARGET: Final = "plugbay.events"
#: states in which a listener's events wait for it (others are passed on, undelivered):
#: a listener restarting after a crash gets them from its restarted worker, as calls do
_WAITING: Final = frozenset({"active", "on-demand", "initializing", "resolved", "restarting"})
#: event names whose listeners are kept at most (past it, all are found again)
_CHAINS: Final = 1024


@dataclass(slots=True, eq=False)
class _Item:
    """One emitted event on its way through its listeners' queues, in priority order."""

    name: str
    payload: dict[str, Any]
    source: str
    chain: list[_Inbox]
    at: int = 0


@dataclass(slots=True, eq=False)
class _Inbox:
    """One listener's bounded queue for one event, with what happened to its events."""

    plugin: str
    spec: EventListen
    queue: collections.deque[_Item] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    #: queued for a version that listened; the one running when its turn came did not
    unheard: int = 0
    #: when its failures and its drops are said in the log (with how many were not)
    failures_said: LogPace = field(default_factory=LogPace)
    drops_said: LogPace = field(default_factory=LogPace)
    #: no longer among the host's listeners (unloaded, or its version does not listen)
    gone: bool = False

    def counts(self) -> dict[str, int]:
        """What happened to its events so far (``plugbay info``, ``stats``)."""
        return {
            "queued": len(self.queue),
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "unheard": self.unheard,
        }


def _say_kept(box: _Inbox) -> None:
    """What a listener's paced lines kept unsaid, said as it leaves (its plugin stops, or
    the host): failures or drops that ended within the minute are heard too."""
    for pace, what in ((box.failures_said, "failed"), (box.drops_said, "dropped")):
        unsaid = pace.settle()
        if unsaid:
            logging.getLogger(f"plugbay.plugin.{box.plugin}").warning(
                "event '%s': %d more %s since the last line said, not logged until now "
                "(its listener stopped)",
                box.spec.event,
                unsaid,
                what,
                extra={
                    "plugbay_owner": box.plugin,
                    "fields": {"source": "host", "not_logged": unsaid},
                },
            )


@functools.lru_cache(maxsize=1024)
def _remote_spec(name: str) -> RemoteSpec:
    """What a worker is sent: a call to ``event:NAME`` that its event handler answers
    (made once per event name: a spec is 0.6 µs to make, a delivery ~20)."""
    return RemoteSpec(frames.RemoteCommand(EVENT_PREFIX + name, f"{EVENT_PREFIX}{name}", {}, {}))


class PluginEvents:
    """One per host (``manager.plugin_events``); see the module docstring."""

    def __init__(self, manager: PluginManager) -> None:
        self._m = manager
        self._inboxes: dict[tuple[str, str], _Inbox] = {}
        #: (plugin, event) → events passed on unheard by a listener that left while its
        #: plugin stays loaded (a version that does not listen): ``plugbay info`` says it
        self._unheard_left: dict[tuple[str, str], int] = {}
        #: each event's listeners, and the roster epoch they were found at (``_chain``)
        self._chains: dict[str, tuple[int, list[_Inbox]]] = {}
        #: events emitted, by (sender, event)
        self.emitted: collections.Counter[tuple[str, str]] = collections.Counter()
        #: the monotonic clock the log's pace is read on (on a failure path only)
        self.clock: Callable[[], float] = time.monotonic
        #: what each plugin's log says of its events passed on unheard (which, how many)
        self.unheard_said = UnheardLog(lambda: self.clock())
        self._closed = False

    # -- sending --------------------------------------------------------------------------

    def sink_for(self, plugin_id: str) -> EmitSink:
        """An inline plugin's ``context.events``: bound to its id, checked as a worker's."""
        return functools.partial(self.emit_from, plugin_id)

    async def emit_from(
        self, plugin_id: str, name: object, payload: object, oversized: object = None
    ) -> int:
        """An event from plugin ``plugin_id`` (the channel's owner): refused unless its
        manifest declares it; returns the number of listeners it was sent to.
        ``oversized``: the payload's size, from a worker that found it over the bound and
        kept it (``isolation._emit``): refused here, in the host's words."""
        name = self.admit(plugin_id, name, payload, oversized)
        return await self.publish(name, payload, source=plugin_id)  # type: ignore[arg-type]

    def admit(self, plugin_id: str, name: object, payload: object, oversized: object = None) -> str:
        """:meth:`emit_from`'s checks, raising its refusals; the event's name when it may
        be published (a Wasm module's event is checked so, then published without its
        module waiting on listeners: ``isolation._wasm_events``)."""
        rec = self._m.records_by_id.get(plugin_id)
        manifest = rec.manifest if rec is not None else None
        if not isinstance(name, str) or manifest is None or name not in manifest.emits:
            shown = name if isinstance(name, str) else repr(name)
            raise self._m.broker.deny(
                plugin_id,
                f"emitting the event '{shown}'",
                None,
                f'declare it in the manifest: [events] emits = ["{shown}"]',
                declare=f'[events] emits = ["{shown}"]',
            )
        if type(oversized) is int and oversized > MAX_PAYLOAD:
            raise payload_refused(name, oversized, plugin_id)
        if not isinstance(payload, dict):
            raise ParameterError(
                f"the payload of event '{name}' is not a mapping",
                plugin=plugin_id,
                hint="emit a msgspec.Struct, a dataclass or a mapping",
            )
        payload_size(name, payload, plugin_id)  # a worker's emit is checked again here
        return name

    async def publish(self, name: str, payload: dict[str, Any], *, source: str = "host") -> int:
        """Send ``name`` to its listeners (the host's own and tests' entry point)."""
        self.emitted[(source, name)] += 1
        chain = self._chain(name)
        if chain:
            await self._offer(_Item(name, payload, source, chain))
            # a turn of the loop per event someone listens to: a plugin emitting in a loop
            # lets its listeners (and the rest of the host) run meanwhile, instead of
            # filling their queues unseen; an event nobody listens to costs no turn
            await asyncio.sleep(0)
        return len(chain)

    def _chain(self, name: str) -> list[_Inbox]:
        """The listeners of ``name`` now, lowest priority first (then by id): kept per
        event until a record changes (``roster_epoch``), so a publish costs the same
        among a thousand plugins as among three."""
        epoch = self._m.roster_epoch
        kept = self._chains.get(name)
        if kept is not None and kept[0] == epoch:
            return kept[1]
        if len(self._chains) >= _CHAINS:  # names a host publishes to are few; never unbounded
            self._chains.clear()
        chain = self._listeners(name)
        self._chains[name] = (epoch, chain)
        return chain

    def _listeners(self, name: str) -> list[_Inbox]:
        found: list[tuple[int, str, EventListen]] = []
        for rec in self._m.records_by_id.values():
            manifest = rec.manifest
            spec = manifest.listens.get(name) if manifest is not None else None
            if spec is not None and str(rec.state) in _WAITING:
                found.append((spec.priority, rec.id, spec))
        found.sort(key=lambda f: (f[0], f[1]))
        return [self._inbox(plugin, spec) for _, plugin, spec in found]

    def _inbox(self, plugin: str, spec: EventListen) -> _Inbox:
        box = self._inboxes.get((plugin, spec.event))
        if box is None:
            box = self._inboxes[(plugin, spec.event)] = _Inbox(plugin, spec)
            self._unheard_left.pop((plugin, spec.event), None)  # it listens again
        box.spec = spec  # a new version may declare another bound or policy
        if box.task is None and not self._closed:
            box.task = asyncio.get_running_loop().create_task(
                self._run(box), name=f"plugbay-events-{plugin}-{spec.event}"
            )
        return box

    async def _offer(self, item: _Item) -> None:
        """Queue ``item`` for its next listener; when that queue is full, its policy says
        which event is dropped there, and the dropped one moves on to the listener after."""
        while item.at < len(item.chain):
            box = item.chain[item.at]
            if box.gone:  # no longer a listener: on to the next one
                item.at += 1
                continue
            spec = box.spec
            if len(box.queue) < spec.queue or (
                spec.overflow == "block" and await self._room(box, spec.block_timeout)
            ):
                box.queue.append(item)
                box.wake.set()
                return
            box.dropped += 1
            if spec.overflow == "drop-oldest":  # the new one waits, the oldest moves on
                oldest = box.queue.popleft()
                box.queue.append(item)
                box.wake.set()
                item = oldest
            self._dropped(box, item.name)
            item.at += 1

    async def _room(self, box: _Inbox, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for room in ``box`` (the ``block`` policy)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while len(box.queue) >= box.spec.queue:
            left = end - loop.time()
            if left <= 0:
                return False
            box.room.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await box.room.wait()
        return True

    def _dropped(self, box: _Inbox, name: str) -> None:
        unsaid = box.drops_said.due(self.clock())
        if unsaid is None:
            return
        logging.getLogger(f"plugbay.plugin.{box.plugin}").warning(
            "event '%s' dropped: its queue of %d is full (overflow %s; %d dropped so far%s)",
            name,
            box.spec.queue,
            box.spec.overflow,
            box.dropped,
            f"; {unsaid} more since the last one said, not logged" if unsaid else "",
            extra={
                "plugbay_owner": box.plugin,
                "fields": {"source": "host", "dropped_so_far": box.dropped, "not_logged": unsaid},
            },
        )

    # -- delivering -----------------------------------------------------------------------

    async def _run(self, box: _Inbox) -> None:
        while True:
            while not box.queue:
                if not self._listening(box):
                    self._retire(box)
                    return
                box.wake.clear()
                await box.wake.wait()
            item = box.queue.popleft()
            box.room.set()
            await self._deliver(box, item)
            item.at += 1
            await self._offer(item)

    def _loaded(self, plugin_id: str) -> bool:
        """Whether the plugin is loaded: not unloaded, disabled, failed (the host gave up
        on it until it is loaded or started again) nor forgotten."""
        rec = self._m.records_by_id.get(plugin_id)
        return rec is not None and str(rec.state) not in ("stopped", "disabled", "failed")

    def _listening(self, box: _Inbox) -> bool:
        """Whether the box's plugin is loaded and its version listens to its event."""
        rec = self._m.records_by_id.get(box.plugin)
        manifest = rec.manifest if rec is not None else None
        if manifest is None or not self._loaded(box.plugin):
            return False
        return box.spec.event in manifest.listens

    def _retire(self, box: _Inbox) -> None:
        """The box leaves the host's listeners (its queue is empty): an event on its way
        with it in its chain goes past it (``_offer``)."""
        box.gone = True
        box.task = None
        _say_kept(box)
        key = (box.plugin, box.spec.event)
        if self._inboxes.get(key) is box:
            del self._inboxes[key]
        if box.unheard and self._loaded(box.plugin):
            self._unheard_left[key] = box.unheard

    def roster_changed(self, plugin_id: str) -> None:
        """``plugin_id`` stopped or failed, or its manifest was replaced (the manager says
        so): each of its idle listeners looks whether it still listens, and leaves if not
        (only its own: a host stopping 1,000 listeners wakes each once, not 1,000 times)."""
        for (plugin, _), box in list(self._inboxes.items()):
            if plugin == plugin_id:
                box.wake.set()
        for key in [key for key in self._unheard_left if not self._loaded(key[0])]:
            del self._unheard_left[key]
        if not self._loaded(plugin_id):
            self.unheard_said.forget(plugin_id)

    async def _deliver(self, box: _Inbox, item: _Item) -> None:
        try:
            route = await self._route(box.plugin, item.name)
            manifest = route.handle.manifest
            if item.name not in manifest.listens:  # it changed version while this waited
                box.unheard += 1
                self.unheard_said.unheard(box.plugin, item.name, str(manifest.version))
                return
            await self._handle(route, item)
            box.delivered += 1
        except asyncio.CancelledError:
            raise
        except CallTimeout:
            box.failed += 1
            self._failed(box, item, "its handler did not finish within its call timeout")
        except PlugbayError as exc:
            box.failed += 1
            self._failed(box, item, str(exc))
        except Exception as exc:  # the plugin's own failure, never the host's
            box.failed += 1
            self._failed(box, item, f"{type(exc).__name__}: {exc}")

    async def _route(self, plugin_id: str, name: str) -> Route:
        """Where the listener runs now: started here when the event starts it on demand,
        waited for while it starts (or until a call starts it)."""
        manager = self._m
        activation = manager.activation
        while True:
            route = manager.route_of(plugin_id)
            if route is not None:
                return route
            rec = manager.records_by_id.get(plugin_id)
            state = str(rec.state) if rec is not None else "unknown"
            if rec is None or state not in _WAITING:
                raise PluginStateError(f"is {state}: the event was not delivered", plugin=plugin_id)
            if state == "on-demand" and activation.starts_on(plugin_id, name):
                return await activation.start(plugin_id)
            await activation.changed(plugin_id)

    async def _handle(self, route: Route, item: _Item) -> None:
        handle = route.handle
        inflight = route.inflight
        inflight[0] += 1  # a swap drains it like a call
        try:
            instance = handle.instance
            if instance is None:
                await handle.call(_remote_spec(item.name), {"event": item.payload}, route.timeout)
                return
            spec = event_handlers(type(instance)).get(item.name)
            if spec is None:
                raise PluginCallError(
                    f"listens to '{item.name}' but has no handler for it",
                    plugin=getattr(instance, "id", None),
                    hint=f'mark a method @on_event("{item.name}")',
                )
            result = call_handler(instance, spec, item.payload)
            if inspect.isawaitable(result):  # a def handler is done: no timer for it
                async with deadline(route.timeout):
                    await result
        finally:
            inflight[0] -= 1

    def _failed(self, box: _Inbox, item: _Item, why: str) -> None:
        """Said like a drop (the first, then at most once a minute: a listener that raises
        on every event does not flood the log, one that fails now and then is heard each
        time), with how many failed unsaid meanwhile."""
        unsaid = box.failures_said.due(self.clock())
        if unsaid is None:
            return
        logging.getLogger(f"plugbay.plugin.{box.plugin}").warning(
            "event '%s' from %s was not handled: %s (%d failed so far%s)",
            item.name,
            item.source,
            why,
            box.failed,
            f"; {unsaid} more since the last one said, not logged" if unsaid else "",
            extra={
                "plugbay_owner": box.plugin,
                "fields": {"source": "host", "failed": box.failed, "not_logged": unsaid},
            },
        )

    # -- what the host shows --------------------------------------------------------------

    def describe(self, plugin_id: str) -> dict[str, Any]:
        """``plugbay info``'s events of one plugin: declared, and each listener's queue."""
        rec = self._m.records_by_id.get(plugin_id)
        manifest = rec.manifest if rec is not None else None
        if manifest is None:
            return describe_events((), {}, ())
        counts = {
            event: {"queued": 0, "delivered": 0, "failed": 0, "dropped": 0, "unheard": n}
            for (plugin, event), n in list(self._unheard_left.items())
            if plugin == plugin_id
        }
        counts.update(
            (event, box.counts())
            for (plugin, event), box in list(self._inboxes.items())
            if plugin == plugin_id
        )
        return describe_events(manifest.emits, manifest.listens, manifest.activation, counts)

    def stats(self) -> list[dict[str, Any]]:
        """Each listener's queue: plugin, event, length, bound, policy and counts."""
        return [
            {
                "plugin": box.plugin,
                "event": event,
                "queue": box.spec.queue,
                "overflow": box.spec.overflow,
                **box.counts(),
            }
            for (_, event), box in sorted(self._inboxes.items())
        ]

    def families(self) -> Iterator[Metric]:
        """The Prometheus families (read at scrape time, in the server's thread)."""
        # at the first scrape, not as the host's modules load: off ``plugbay run``'s start
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["plugin", "event"]
        queued = GaugeMetricFamily(
            "plugbay_plugin_event_queue_length", "Events waiting for the listener.", labels=labels
        )
        bound = GaugeMetricFamily(
            "plugbay_plugin_event_queue_limit", "The listener's queue bound.", labels=labels
        )
        delivered = CounterMetricFamily(
            "plugbay_plugin_event_deliveries", "Events the listener handled.", labels=labels
        )
        failed = CounterMetricFamily(
            "plugbay_plugin_event_failures",
            "Events the listener failed (raised, timed out, not running).",
            labels=labels,
        )
        dropped = CounterMetricFamily(
            "plugbay_plugin_events_dropped",
            "Events dropped for the listener by its overflow policy.",
            labels=[*labels, "overflow"],
        )
        unheard = CounterMetricFamily(
            "plugbay_plugin_events_unheard",
            "Events queued for an earlier version of the listener that does not listen now.",
            labels=labels,
        )
        emitted = CounterMetricFamily(
            "plugbay_plugin_events_emitted", "Plugin events emitted, by sender.", labels=labels
        )
        for row in self.stats():
            key = [row["plugin"], row["event"]]
            queued.add_metric(key, row["queued"])
            bound.add_metric(key, row["queue"])
            delivered.add_metric(key, row["delivered"])
            failed.add_metric(key, row["failed"])
            dropped.add_metric([*key, row["overflow"]], row["dropped"])
            unheard.add_metric(key, row["unheard"])
        for (source, event), n in list(self.emitted.items()):
            emitted.add_metric([source, event], n)
        yield from (queued, bound, delivered, failed, dropped, unheard, emitted)

    async def close(self) -> None:
        """Stop delivering (the host is stopping); what still waits is not delivered."""
        self._closed = True
        self.unheard_said.say_kept()
        self._chains.clear()
        tasks = [b.task for b in self._inboxes.values() if b.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for box in self._inboxes.values():
            box.task = None
            _say_kept(box)
