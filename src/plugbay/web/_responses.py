"""The error statuses of each route, as the OpenAPI document lists them.

Two sources, one table of words: what a route's own work can answer (a plugin it does
not know, a state that does not allow it: ``errors(404, 409)`` beside the route), and
what the door in front of every route answers for any request of a kind, added to each
operation here rather than written by hand on each: the head deadline (408,
``_slow_clients``) on every request; the token (401) on all but ``/healthz``; the stop
(503, ``_drain``) on all but ``/healthz`` and ``/readyz``; and for a request with a body
(any method but GET, HEAD, OPTIONS: ``_gate``) a missing scope or a cookie from another
origin (403), a body that is not JSON or nests too deep (400), too large (413), too slow
(408), and the record of the change the state must keep first (503, or 507 when its disk
is full); a read that needs more than ``read`` (a plugin's recorded calls) may answer
403 too. A route that takes query parameters or a body may answer 422.
"""

from __future__ import annotations

from typing import Any, Final

from plugbay.web._errors import ErrorBody, ErrorDetail
from plugbay.web.scopes import needed_scope

__all__ = ["ERROR_TEXT", "add_door_errors", "errors"]

#: what each error status means, the same words on every route
ERROR_TEXT: Final[dict[int, str]] = {
    400: "The request cannot be done: the body is not JSON, or nests more than 64 levels.",
    401: "No token, or not this host's token.",
    403: "The token lacks the scope this needs, or the dashboard's cookie was used for a "
    "change from another origin.",
    404: "No such plugin, or no such command.",
    408: "The request's head did not arrive whole within 10 s, or its body within 30 s "
    "after it; the connection is closed.",
    409: "The plugin is not in a state that allows this, or cannot be served as it is on "
    "disk (its manifest, its dependencies, its config, its Python environment, a load or "
    "reload that failed).",
    413: "The request body is larger than the host accepts (--http-max-body).",
    422: "The parameters or the body do not match what is expected (a value, a config, a "
    "version or a range that does not fit).",
    423: "Another host holds the state directory.",
    501: "This machine, or the plugin's backend, cannot do this (a sandbox layer or a storage "
    "quota the kernel lacks): a retry will not help.",
    502: "The plugin's own code failed (raised, crashed, hit a limit, returned the wrong type, "
    "or ran into a denial, a full store or a metric of its own that is wrong); an error "
    "its command raised or passed on keeps its code, and details.raised_by or "
    "details.relayed_by names the plugin.",
    503: "The host is stopping (Retry-After says when to come back) or not started, a "
    "service the call needs is not provided, or the host's state store cannot be used.",
    504: "The command ran past its time limit.",
    507: "The disk holding the state is full: nothing was changed.",
}

_SAFE: Final = frozenset({"get", "head", "options"})
_REF: Final = {"$ref": "#/components/schemas/ErrorBody"}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route's own work can answer; the door's are added to every
    operation where the document is built (:func:`add_door_errors`)."""
    return {s: {"model": ErrorBody, "description": ERROR_TEXT[s]} for s in sorted(set(statuses))}


def door_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """What the door in front of the route can answer a ``method`` request to ``path``."""
    if path == "/healthz":
        return {408}
    statuses = {401, 408} | (set() if path == "/readyz" else {503})
    if method not in _SAFE:
        statuses |= {400, 403, 413, 503, 507}
    elif needed_scope(method.upper(), path) != "read":
        statuses.add(403)  # a read of recorded calls needs call:ID (``scopes``)
    if "requestBody" in operation or any(
        p.get("in") == "query" for p in operation.get("parameters", ())
    ):
        statuses.add(422)
    return statuses


def add_door_errors(schema: dict[str, Any]) -> None:
    """Each operation of ``schema`` with every error status it can answer."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, ErrorDetail):
        if model.__name__ not in components:
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components[model.__name__] = {k: v for k, v in found.items() if k != "$defs"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            statuses = door_statuses(path, method, operation)
            if "422" in responses and _fastapis(responses["422"]):
                # FastAPI's own 422 has a body this API never sends: ours, when it can
                del responses["422"]
            for status in sorted(statuses):
                responses.setdefault(
                    str(status),
                    {
                        "description": ERROR_TEXT[status],
                        "content": {"application/json": {"schema": dict(_REF)}},
                    },
                )


def _fastapis(response: dict[str, Any]) -> bool:
    """Whether ``response`` is the 422 FastAPI adds to a route with parameters."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))
