"""``GET /api/v1/events``: the host's system events (a plugin loaded, failed, was
disabled; the host started, is stopping; …) as server-sent events, for an application
or a tool that reacts to them without polling ``/plugins``.

Each connection subscribes to the host's event bus with a handler that only puts the
event on the connection's own bounded queue: a slow reader never slows the bus or
another reader. When its queue is full the oldest event is dropped, and the reader is
told how many with a ``dropped`` event before the next one it gets.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from plugbay.api import SystemEvent
from plugbay.web._api import HostDep, errors

__all__ = ["QUEUE", "describe", "event_schema", "router"]

router = APIRouter(tags=["events"])

#: events held for one reader before the oldest are dropped
QUEUE: Final = 1_000
#: a comment line this often, so a reader (and a proxy) sees the connection is alive and
#: a reader that went away is noticed
KEEPALIVE_S: Final = 15.0
#: readers are ordered after every plugin's listener on the bus
_PRIORITY: Final = 1_000_000
_readers = itertools.count(1)


class EventItem(BaseModel):
    """The data of one ``system`` event."""

    kind: str = Field(description="Dotted: plugin.loaded, plugin.failed, host.stopping, …")
    source: str = Field(description="Who emitted it: 'host' or a plugin's id")
    data: dict[str, Any] = Field(description="What the kind carries (plugin, version, …)")
    time: float = Field(description="When it happened (Unix time)")


class EventsOpen(BaseModel):
    """The data of the first event, ``open``: the stream is subscribed."""

    t: float = Field(description="When the subscription began (Unix time)")
    kinds: list[str] = Field(description="The kinds asked for ([]: every kind)")


class EventsDropped(BaseModel):
    """The data of a ``dropped`` event: events lost because this reader fell behind."""

    dropped: int = Field(ge=1, description="How many since the last event sent")


class _Reader:
    """One connection's queue: bounded, dropping the oldest."""

    def __init__(self) -> None:
        self.queue: collections.deque[SystemEvent | None] = collections.deque()
        self.dropped = 0
        self.ready = asyncio.Event()

    async def put(self, event: SystemEvent) -> None:
        if len(self.queue) >= QUEUE:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(event)
        self.ready.set()

    def close(self) -> None:
        self.queue.append(None)
        self.ready.set()

    async def wait(self, timeout: float) -> bool:
        """Whether something is queued, waiting up to ``timeout`` for it."""
        if not self.queue:
            self.ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.ready.wait()
        return bool(self.queue)


def _message(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    body = json.dumps(data, separators=(",", ":"), default=str)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {body}\n\n"


@router.get(
    "/api/v1/events", response_class=StreamingResponse,
    responses={**errors(), 200: {"content": {"text/event-stream": {}},
                                "description": "Server-sent events: 'open', then one "
                                "'system' an event ('dropped' if the reader fell behind)"}},
    summary="The host's system events as they happen, as server-sent events",
)  # fmt: skip
async def events(
    request: Request,
    host: HostDep,
    kind: Annotated[
        list[str] | None,
        Query(description="Only these kinds (repeatable; 'plugin.*' matches a prefix)."),
    ] = None,
    max_events: Annotated[
        int, Query(ge=0, le=100_000, description="Stop after this many (0: until closed).")
    ] = 0,
) -> StreamingResponse:
    """``open`` first (``{"t", "kinds"}``), then each event as ``system``
    (``{"kind", "source", "data", "time"}``, numbered by ``id``), from the moment of
    subscribing: nothing is replayed (``GET /api/v1/plugins/{id}/history`` has the
    past). A ``dropped`` event (``{"dropped": n}``) says the reader fell more than
    1,000 events behind and lost the oldest."""
    kinds = tuple(k.strip() for k in kind or () if k.strip())
    web = request.app.state.web
    reader = _Reader()
    name = f"http-events-{next(_readers)}"
    host.events.listen(name, _PRIORITY, kinds, reader.put)

    async def closing() -> None:
        await web.closing.wait()
        reader.close()

    watcher = asyncio.get_running_loop().create_task(closing())

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n" + _message("open", {"t": time.time(), "kinds": list(kinds)})
            async for message in _messages(request, reader, max_events):
                yield message
        finally:
            host.events.unsubscribe(name)
            watcher.cancel()

    return StreamingResponse(
        stream(), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )  # fmt: skip


async def _messages(request: Request, reader: _Reader, max_events: int) -> AsyncIterator[str]:
    sent = 0
    while not max_events or sent < max_events:
        if not await reader.wait(KEEPALIVE_S):
            if await request.is_disconnected():
                return
            yield ": keep-alive\n\n"
            continue
        got = reader.queue.popleft()
        if got is None:  # the host is stopping
            return
        if reader.dropped:
            yield _message("dropped", {"dropped": reader.dropped})
            reader.dropped = 0
        sent += 1
        item = {"kind": got.kind, "source": got.source, "data": got.data, "time": got.time}
        yield _message("system", item, sent)


def describe(schema: dict[str, Any]) -> None:
    """The OpenAPI description of each server-sent event of ``/api/v1/events`` (as
    ``_app._describe_stream`` does for ``/api/v1/stream``)."""
    components = schema["components"]["schemas"]
    for model in (EventItem, EventsOpen, EventsDropped):
        components[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    content = schema["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]
    content["text/event-stream"]["schema"] = {
        "oneOf": [
            event_schema("open", "EventsOpen"),
            event_schema("system", "EventItem"),
            event_schema("dropped", "EventsDropped"),
        ]
    }


def event_schema(event: str, model: str) -> dict[str, Any]:
    """One server-sent event: ``event`` with a JSON ``data`` line that decodes to the
    component ``model`` (OpenAPI before 3.2 describes an event so)."""
    return {
        "type": "object",
        "properties": {
            "event": {"const": event},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": f"#/components/schemas/{model}"},
            },
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
        "required": ["event", "data"],
    }
