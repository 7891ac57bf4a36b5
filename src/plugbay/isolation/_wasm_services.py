"""A Wasm module's service call (``plugbay.service``): another plugin's command, called
through the host (its broker) on the host's loop, while the module's instance thread
waits for the answer.

It waits no longer than its call may run: the call's timer is the host loop's, so a loop
that does not come to the timer (blocked by a plugin's code, or stopping) does not come
to the service call either. At the call's deadline the instance thread stops waiting
itself, withdraws the service call (cancelled on the host's loop: a sandboxed callee is
sent a ``Cancel``; one not begun yet is never made) and stops the call as its timer
would (``_wasm_deadline``): the caller gets the time-out and the instance is replaced."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

from plugbay.api.errors import PlugbayError
from plugbay.isolation._wasm_deadline import Deadline
from plugbay.isolation._wasm_requests import fail

__all__ = ["HostCall", "service_request"]

#: (calling plugin, target ("service:NAME@RANGE" or a plugin id), command, params) -> value
HostCall = Callable[[str, str, str, dict[str, Any]], Awaitable[Any]]
#: seconds a module waits for a service call at most, whatever its call's deadline
_SERVICE_WAIT: Final = 60.0


def service_request(
    plugin_id: str,
    request: dict[str, Any],
    host_call: HostCall,
    loop: asyncio.AbstractEventLoop | None,
    due: Deadline,
    waits: Callable[[concurrent.futures.Future[Any] | None], None],
) -> dict[str, Any]:
    """``{"service", "range"}`` or ``{"plugin"}``, with ``{"command", "params"}``, from
    plugin ``plugin_id``'s module (on its instance's thread): called on the host's
    ``loop``; the answer the module reads. ``waits`` tells the handle what the job waits
    on (cancelled when the job is interrupted), then that it waits no more; the wait ends
    at the call's deadline (``due``), which stops the call."""
    command, params = request.get("command"), request.get("params", {})
    if "service" in request:
        target = f"service:{request['service']}@{request.get('range', '*')}"
    else:
        target = str(request.get("plugin", ""))
    if target == plugin_id:
        return fail("a Wasm plugin cannot call itself through the host (it runs one call "
                    "at a time: the call would wait for itself)")  # fmt: skip
    if not isinstance(command, str) or not isinstance(params, dict) or loop is None:
        return fail("a service request has a command and params (an object)")
    answer: concurrent.futures.Future[Any] = concurrent.futures.Future()
    wait = min(_SERVICE_WAIT, due.until - time.monotonic())
    waits(answer)  # cancelled at once when the job was interrupted already
    try:
        try:
            loop.call_soon_threadsafe(
                _start, loop, answer, host_call, (plugin_id, target, command, params)
            )
        except RuntimeError:  # the host's loop is closed
            return fail("the host is stopping: the service call was not made")
        return {"ok": answer.result(timeout=max(0.0, wait))}
    except PlugbayError as exc:
        return {"error": exc.to_dict()}
    except concurrent.futures.CancelledError:
        return fail("the call was interrupted while it waited on the host")
    except concurrent.futures.TimeoutError:
        if not answer.cancel():  # answered meanwhile
            return _answer(answer)
        if wait < _SERVICE_WAIT:  # at the call's deadline: stopped as its timer stops it
            due.overdue()
            return fail(f"the call reached its deadline while it waited on {command!r} of "
                        f"{target}: that call was cancelled")  # fmt: skip
        return fail(f"the host call did not finish within {_SERVICE_WAIT:g} s")
    except Exception as exc:
        return fail(f"{type(exc).__name__}: {exc}")
    finally:
        waits(None)


def _answer(answer: concurrent.futures.Future[Any]) -> dict[str, Any]:
    """The answer of a service call that ended as the module stopped waiting for it."""
    try:
        return {"ok": answer.result()}
    except PlugbayError as exc:
        return {"error": exc.to_dict()}
    except Exception as exc:
        return fail(f"{type(exc).__name__}: {exc}")


def _start(
    loop: asyncio.AbstractEventLoop,
    answer: concurrent.futures.Future[Any],
    host_call: HostCall,
    args: tuple[str, str, str, dict[str, Any]],
) -> None:
    """On the host's loop: nothing when the module stopped waiting (the call was
    withdrawn); else the call, as a task the module's withdrawal cancels."""
    if answer.cancelled():
        return
    task = loop.create_task(_called(answer, host_call, args))
    task.add_done_callback(partial(_settle, answer))
    answer.add_done_callback(lambda _: _cancel(loop, task))


async def _called(
    answer: concurrent.futures.Future[Any],
    host_call: HostCall,
    args: tuple[str, str, str, dict[str, Any]],
) -> Any:
    if answer.cancelled():  # withdrawn between its start and its first step
        return None
    return await host_call(*args)


def _cancel(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    """Any thread: the call is cancelled on the loop (when the module stopped waiting)."""
    if task.done():
        return
    with contextlib.suppress(RuntimeError):  # the loop is closed: the task went with it
        loop.call_soon_threadsafe(task.cancel)


def _settle(answer: concurrent.futures.Future[Any], task: asyncio.Task[Any]) -> None:
    """On the loop: the call's outcome, for the module, unless it stopped waiting."""
    if answer.done():
        return
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if task.cancelled():
            answer.cancel()
        elif (exc := task.exception()) is not None:
            answer.set_exception(exc)
        else:
            answer.set_result(task.result())
