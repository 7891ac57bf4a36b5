"""``isolation.requests``: a request its caller gave up on is kept, as it was, until its
answer or its deadline (the worker may still be running it: ``heartbeat.held_by``)."""

from __future__ import annotations

import asyncio

from plugbay.isolation import requests
from plugbay.isolation.requests import Requests


async def test_a_request_given_up_on_is_kept_until_its_answer() -> None:
    loop = asyncio.get_running_loop()
    calls = Requests(lambda request, what: None)
    request, _future, start = calls.open_call(loop, 30.0, "work")
    calls.close(request)  # its caller gave up
    assert request not in calls.inflight and request not in calls.pending
    assert calls.abandoned[request][:2] == (start, "work")
    calls.answer(request, "late")  # the worker finished it: dropped, and forgotten
    assert calls.abandoned == {}
    calls.stop()


async def test_the_calls_given_up_on_are_bounded_those_past_their_deadline_going_first() -> None:
    loop = asyncio.get_running_loop()
    calls = Requests(lambda request, what: None)
    kept = requests._ABANDONED_KEPT
    for _ in range(kept):
        request, _future, _start = calls.open_call(loop, 0.0, "work")  # due at once
        calls.close(request)
    assert len(calls.abandoned) == kept
    request, _future, _start = calls.open_call(loop, 30.0, "work")
    calls.close(request)  # full: those past their deadline make room
    assert list(calls.abandoned) == [request]
    for _ in range(kept):
        fresh, _future, _start = calls.open_call(loop, 30.0, "work")
        calls.close(fresh)
    assert len(calls.abandoned) == kept  # never more, whatever a caller does
    calls.stop()
