"""Many calls of one command in one request: ``POST …/commands/{command}/batch``.

The HTTP form of :meth:`Host.call_many <plugbay.runtime.host.Host.call_many>`: a client
with many calls to make sends their parameter sets in one body and gets their answers
in one, in order. Each call is checked, bounded and counted as a single call through
``POST …/commands/{command}`` is, and one bad call never fails the others: each item of
the answer is ``{"result": …}`` or ``{"error": {…}}`` in the API's one error shape. A
plugin or command that does not exist, or a malformed body, fails the whole request
with the status a single call would get.

A token with the scope ``call:ID`` may batch plugin ID's commands, as it may call them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from plugbay.api.errors import PlugbayError
from plugbay.web._api import errors
from plugbay.web._bodies import not_json
from plugbay.web._errors import error_response, http_error

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = ["MAX_BATCH", "batch_response", "router"]

router = APIRouter()

#: parameter sets in one batch: enough to fill a worker's pipe many times over, few
#: enough that one request cannot hold the host's loop for long
MAX_BATCH: Final = 10_000

_encode = msgspec.json.Encoder(enc_hook=str).encode


class BatchRequest(BaseModel):
    params: list[dict[str, Any]] = Field(
        description="One object of parameters by name per call, in the order of the answers.",
        max_length=MAX_BATCH,
    )


class BatchResult(BaseModel):
    results: list[dict[str, Any]] = Field(
        description='Per call, in order: {"result": …} or {"error": {code, message, hint, …}}.'
    )


@router.post(
    "/api/v1/plugins/{plugin_id}/commands/{command}/batch", tags=["calls"],
    response_model=BatchResult, responses=errors(400, 404, 409, 413, 422, 502),
    summary="Call a command many times at once; each call checked, each answer in order",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": BatchRequest.model_json_schema()}}}},
)  # fmt: skip
async def call_batch(plugin_id: str, command: str, request: Request) -> Response:
    host = request.app.state.host
    return await batch_response(host, plugin_id, command, await request.body(), request.headers)


def _parsed(body: bytes, headers: Mapping[str, str]) -> list[dict[str, Any]]:
    """The body's parameter sets, or the error that says what a batch looks like."""
    shape = 'send {"params": [{...}, {...}]}: one object of parameters per call'
    try:
        data = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError as exc:
        see = f"the body is {shape.removeprefix('send ')}"
        raise not_json(headers, exc, hint=shape, see=see)[0] from None
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, list):
        raise http_error(
            "parameter_invalid", "a batch's body must be an object with a list 'params' of "
            "objects", hint=shape,
        )  # fmt: skip
    wrong = next((i for i, p in enumerate(params) if not isinstance(p, dict)), None)
    if wrong is not None:
        error = http_error(
            "parameter_invalid",
            "a batch's body must be an object with a list 'params' of objects: "
            f"params[{wrong}] is {_json_kind(params[wrong])}",
            hint=shape, index=wrong,
        )  # fmt: skip
        error.where = f"params[{wrong}]"
        raise error
    if len(params) > MAX_BATCH:
        raise http_error(
            "batch_too_large",
            f"a batch may hold {MAX_BATCH:,} calls; this one has {len(params):,}",
            hint="split it into several requests",
        )
    return params


async def batch_response(
    host: Host, plugin_id: str, command: str, body: bytes, headers: Mapping[str, str]
) -> Response:
    """The whole batch route: the gate runs it directly for POSTs to the route's path, as
    it does a single call (no FastAPI routing on the hot path)."""
    try:
        params = _parsed(body, headers)
    except PlugbayError as exc:
        # declared JSON, not JSON: 400, as a single call's; not sent as JSON, or JSON of
        # the wrong shape: 422; too many: 413
        status = {"batch_too_large": 413, "body_invalid": 400}.get(exc.code, 422)
        return error_response(exc, status)
    try:
        answers = await host.call_many(plugin_id, command, params, strict=False)
    except PlugbayError as exc:
        return error_response(exc)
    results = [
        {"error": _at(i, a)} if isinstance(a, PlugbayError) else {"result": a}
        for i, a in enumerate(answers)
    ]
    return Response(_encode({"results": results}), media_type="application/json")


def _at(index: int, error: PlugbayError) -> dict[str, Any]:
    """One call's error, saying which call it was: ``where`` and ``details["index"]`` name
    its place in ``params`` (a copy: one error may answer several calls)."""
    own = type(error).__new__(type(error))
    own.__dict__.update(error.__dict__)
    own.where = f"params[{index}]" + (f", {error.where}" if error.where else "")
    own.details = {**error.details, "index": index}
    return own.to_dict()


def _json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words, with the value when it is short."""
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "null"
    )
    shown = _encode(value).decode()
    return f"{kind} ({shown})" if len(shown) <= 40 else kind
