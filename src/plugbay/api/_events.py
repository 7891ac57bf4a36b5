"""Plugin events: ``context.events.emit`` and ``@on_event`` handlers.

Any plugin may declare, in its manifest, the events it emits and the events it
listens to (with a priority, a queue bound and an overflow policy)::

    [events]
    emits = ["cache.evicted"]

    [events.listens."cache.evicted"]
    priority = 10              # lower runs first
    queue = 100                # at most this many waiting for this plugin
    overflow = "drop-oldest"   # or "drop-newest", "block" (with block-timeout)

A payload is typed: a ``msgspec.Struct`` or a dataclass (a mapping is accepted
too). It is turned into plain data where it is emitted, checked by the host
(declared name, bounded size), and converted into the handler's annotated type
where it is received, so a payload that does not fit is refused at the
boundary, naming the field.

System events (``host.*``, ``plugin.*``, ``security.*``) stay the spec's
``SystemPlugin.on_system_event``; they are not plugin events.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import msgspec

from plugbay.api._command import CommandMethod, CommandSpec
from plugbay.api._retired import Retired
from plugbay.api.errors import (
    ParameterError,
    PluginLoadError,
    PluginStateError,
    ResourceLimitExceeded,
)

__all__ = ["EVENT_PREFIX", "EventHandler", "Events", "event_handlers", "on_event"]

#: a handler travels to a worker as a call to ``event:<name>`` (never a command)
EVENT_PREFIX: Final = "event:"
#: the largest payload an event may carry, bytes (as MessagePack): the host refuses more
MAX_PAYLOAD: Final = 64 * 1024

F = TypeVar("F", bound=Callable[..., Any])

#: what the host gives ``Events``: send (name, plain payload) from this plugin
EmitSink = Callable[[str, dict[str, Any]], Awaitable[int]]


class EventHandler(CommandMethod[Any, Any, Any]):
    """What ``@on_event(name)`` makes of a method: not a command (callers cannot reach
    it), checked like one (its ``event`` parameter's annotation types the payload)."""

    __slots__ = ("event",)
    is_event = True

    def __init__(self, func: Callable[..., Any], event: str) -> None:
        super().__init__(func, name=EVENT_PREFIX + event)
        self.event = event

    def __set_name__(self, owner: type, attr: str) -> None:
        pass  # its name is the event's, whatever the method is called


def on_event(name: str) -> Callable[[Callable[..., Any]], Any]:
    """Mark a method as the handler of the plugin event ``name`` (declared under
    ``[events.listens."name"]`` in the manifest). The method takes one parameter,
    ``event``, annotated with the payload's type::

        @on_event("cache.evicted")
        async def evicted(self, event: Evicted) -> None: ...
    """

    def mark(func: Callable[..., Any]) -> Any:
        return EventHandler(func, name)

    return mark


def event_handlers(cls: type) -> dict[str, CommandSpec]:
    """Each event a plugin class handles → the checked spec of its handler (cached)."""
    cached = cls.__dict__.get("__plugbay_event_specs__")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    specs: dict[str, CommandSpec] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, EventHandler):
                spec = CommandSpec(cls, value)
                if [p.name for p in spec.params] != ["event"]:
                    raise PluginLoadError(
                        f"the handler of event '{value.event}' must take one parameter, 'event'",
                        where=f"{cls.__module__}.{cls.__qualname__}.{value.func.__name__}",
                        hint="write it as: async def handler(self, event: Payload) -> None",
                    )
                specs[value.event] = spec
    type.__setattr__(cls, "__plugbay_event_specs__", specs)
    return specs


async def run_handler(plugin: object, spec: CommandSpec, payload: Any) -> None:
    """Run one handler in the plugin's own process (:func:`call_handler`, awaited)."""
    result = call_handler(plugin, spec, payload)
    if inspect.isawaitable(result):
        await result


def call_handler(plugin: object, spec: CommandSpec, payload: Any) -> Any:
    """Call one handler with the payload converted into its type first (a mismatch is a
    :class:`ParameterError` naming the field): an async handler's result is awaitable."""
    params = spec.validate_params({"event": payload}, plugin=getattr(plugin, "id", None))
    return spec.func(plugin, **params)


def plain_payload(name: str, payload: object, plugin: str | None) -> dict[str, Any]:
    """A payload as the plain mapping that travels (a Struct, a dataclass or a mapping);
    one holding a value that is not plain data is refused, naming its field."""
    if isinstance(payload, msgspec.Struct) or (
        dataclasses.is_dataclass(payload) and not isinstance(payload, type)
    ):
        pass
    elif isinstance(payload, Mapping):
        payload = dict(payload)
    else:
        raise ParameterError(
            f"the payload of event '{name}' is a {type(payload).__name__}",
            plugin=plugin,
            hint="emit a msgspec.Struct or a dataclass instance (or a mapping)",
        )
    try:
        data = msgspec.to_builtins(payload, str_keys=True)
    except (TypeError, ValueError) as exc:
        field = _unfit_field(payload)
        raise ParameterError(
            f"the payload of event '{name}' cannot be sent: "
            + (f"its field '{field}' " if field else "it ")
            + f"is not plain data ({exc})",
            plugin=plugin,
            where=f"context.events.emit({name!r}, ...)",
            hint="send plain data (str, int, float, bool, None, lists and mappings of them, "
            "Structs, dataclasses): an id or a str() of the object, not the object",
        ) from None
    assert isinstance(data, dict)
    return data


def _unfit_field(payload: object) -> str | None:
    """The first field of a payload that is not plain data (None: none found alone)."""
    if isinstance(payload, dict):
        fields = payload
    elif isinstance(payload, msgspec.Struct):
        fields = msgspec.structs.asdict(payload)
    else:  # a dataclass instance
        fields = {f.name: getattr(payload, f.name) for f in dataclasses.fields(payload)}  # type: ignore[arg-type]
    for key, value in fields.items():
        try:
            msgspec.to_builtins(value, str_keys=True)
        except (TypeError, ValueError):
            return str(key)
    return None


def payload_size(name: str, data: dict[str, Any], plugin: str | None) -> int:
    """The payload's size as it travels; over :data:`MAX_PAYLOAD` it is refused where it is
    emitted, so an oversized one never reaches a worker's socket."""
    size = len(msgspec.msgpack.encode(data))
    if size > MAX_PAYLOAD:
        raise payload_refused(name, size, plugin)
    return size


def payload_refused(name: str, size: int, plugin: str | None) -> ResourceLimitExceeded:
    """The refusal of event ``name``'s payload of ``size`` bytes, over :data:`MAX_PAYLOAD`
    (measured here, or by a worker that kept it: ``isolation._emit``)."""
    return ResourceLimitExceeded(
        f"the payload of event '{name}' is {size:,} bytes, over the "
        f"{MAX_PAYLOAD:,}-byte bound; the event was refused",
        plugin=plugin,
        hint="send a key or an id in the event and keep the data in context.storage",
        details={"limit": "event_payload"},
    )


class Events:
    """``context.events``: emit the plugin events its manifest declares.

    ``await context.events.emit("cache.evicted", Evicted(key="a"))`` queues the event
    for every listener and returns how many took it; the host refuses an event the
    manifest does not declare under ``[events] emits`` (:class:`PermissionDenied`).

    ``host_measures``: a context the host's plugin events serve (a worker's, an inline
    plugin's), whose payload the host measures as it arrives, once (the host's refusal
    of one over :data:`MAX_PAYLOAD` is then one the host stands behind when the plugin
    lets it propagate: a refusal made in the worker would be the plugin's word);
    elsewhere it is measured here, before anything is sent.
    """

    __slots__ = ("_host_measures", "_plugin", "_retired", "_sink")

    def __init__(
        self, sink: EmitSink | None = None, *, plugin: str = "", host_measures: bool = False
    ) -> None:
        self._sink = sink
        self._plugin = plugin
        self._host_measures = host_measures
        self._retired: Retired | None = None

    async def emit(self, name: str, payload: object) -> int:
        """Send ``payload`` as event ``name``; returns the number of listeners that took it
        (a listener whose queue was full and whose policy dropped it is not counted)."""
        data = plain_payload(name, payload, self._plugin or None)
        if not self._host_measures:
            payload_size(name, data, self._plugin or None)
        if self._sink is None:
            if self._retired is not None:
                raise self._retired(f"context.events.emit({name!r})")
            raise PluginStateError(
                f"cannot emit '{name}': this context is not connected to a host",
                plugin=self._plugin or None,
                hint="events are emitted by a plugin that a host started (see plugbay.pdk.testing)",
            )
        return await self._sink(name, data)

    def retire(self, refusal: Retired) -> None:
        """Disconnect for good: the context's instance was stopped (``api._retired``)."""
        self._retired, self._sink = refusal, None

    def __repr__(self) -> str:
        return f"Events({self._plugin or 'unconnected'})"
