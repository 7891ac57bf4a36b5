"""Errors over HTTP: one JSON shape, and the status code that fits each error.

Every error response is ``{"error": {...}}`` with the fields of
:meth:`PlugbayError.to_dict` — a stable ``code``, what happened (``message``),
where, and what to do (``hint``) — so a person reading it, and
:mod:`plugbay.client` re-raising it, get the same paragraph the CLI prints.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from pydantic import BaseModel, Field
from starlette.responses import Response

from plugbay.api.errors import DependentsError, PlugbayError

__all__ = ["ErrorBody", "ErrorDetail", "error_response", "http_error", "status_for"]

#: the status of each error code of ``plugbay.api.errors`` (``tests/test_error_statuses.py``
#: walks them all, and ``docs/http-api.md`` lists them); a code of another module takes
#: the status of the kind it extends, else 400 (the request cannot be done)
_STATUS: Final[dict[str, int]] = {
    # the request asks for something that cannot be done as asked; the message says why
    "plugbay_error": 400,
    "plugin_not_found": 404,
    "command_not_found": 404,
    # something the request gave is malformed (a parameter, a config value, a version)
    "parameter_invalid": 422,
    "config_invalid": 422,
    "version_invalid": 422,
    "range_invalid": 422,
    # the request was fine; the plugin, as it is now or on disk, cannot do it
    "plugin_state": 409,
    "plugin_has_dependents": 409,
    "plugin_load_failed": 409,
    "plugin_init_failed": 409,
    "reload_failed": 409,
    "manifest_invalid": 409,
    "plugin_duplicate": 409,
    "dependency_conflict": 409,
    "dependency_missing": 409,
    "dependency_cycle": 409,
    # the plugin failed, not the request: the host answers for it as a gateway would
    "plugin_raised": 502,
    "plugin_crashed": 502,
    "resource_limit": 502,
    "result_invalid": 502,
    # what a plugin's code ran into while serving the call: its failure, not the request's
    "permission_denied": 502,
    "storage_full": 502,
    "metric_invalid": 502,
    "plugin_timeout": 504,
    # the host cannot serve it now (a service not provided, the host not started or
    # stopping, its state store): the same request may succeed later
    "service_unavailable": 503,
    "host_state": 503,
    "state_error": 503,
    # codes of other modules: each decided here, not inherited (``tests/test_error_statuses.py``)
    "host_locked": 423,  # another host holds the state directory: locked, not malformed
    "python_environment": 409,  # the plugin's requirements cannot be met as they are on disk
    "shipment_refused": 409,  # a load that failed: the node refused the plugin's archive
    "sandbox_policy_invalid": 422,
    "sandbox_unavailable": 501,  # this machine lacks the layer: a retry will not help
    "quota_unavailable": 501,
    "not_supported": 501,  # the plugin's backend cannot do this
    "usage_error": 400,
    "pdk_error": 400,
    "template_error": 400,
    "build_error": 409,
    "wasm_build_failed": 409,
    "wheel_error": 422,
    "signature_error": 422,
    "index_error": 502,  # a plugin index could not be read or fetched from
}

#: the marks (in ``details``) of an error that came out of a plugin's command: its own
#: (``raised_by``: ``isolation.identity``, ``runtime.origin``), or a refusal of the host's
#: to the plugin that it let propagate (``relayed_by``: ``isolation.refusals``)
_FROM_A_PLUGIN: Final = ("raised_by", "relayed_by")


def status_for(error: PlugbayError) -> int:
    """The status of ``error``: its code's, but 502 for an error a plugin's command raised
    or passed on whose code would blame the request (a 4xx): the request was fine, the
    plugin failed (``details["raised_by"]`` or ``["relayed_by"]`` names it)."""
    status = _code_status(error)
    details = error.details
    if status < 500 and isinstance(details, dict) and any(k in details for k in _FROM_A_PLUGIN):
        return 502
    return status


def _code_status(error: PlugbayError) -> int:
    if error.code == "state_error" and error.details.get("disk_full"):
        return 507  # Insufficient Storage: nothing was changed; free space and retry
    if error.code in _STATUS:
        return _STATUS[error.code]
    # a kind of a mapped error has its status (a hit limit is a crash: 502)
    for kind in type(error).__mro__:
        code = getattr(kind, "code", None)
        if isinstance(code, str) and code in _STATUS:
            return _STATUS[code]
    return 400


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. plugin_not_found.")
    type: str = Field(description="The plugbay error class.")
    plugin: str | None = None
    message: str = Field(description="What happened.")
    where: str | None = Field(default=None, description="Where: a file, a field, a parameter.")
    hint: str | None = Field(default=None, description="What to do next.")
    details: dict[str, Any] = Field(default_factory=dict)
    text: str = Field(description="All of the above as one paragraph.")


class ErrorBody(BaseModel):
    error: ErrorDetail


_encode = msgspec.json.Encoder(enc_hook=str).encode


def error_response(
    error: PlugbayError, status: int | None = None, headers: dict[str, str] | None = None
) -> Response:
    if isinstance(error, DependentsError):  # the cascade as a request asks for it
        error.asked_through("http")
    return Response(
        _encode({"error": error.to_dict()}),
        status_code=status or status_for(error),
        media_type="application/json",
        headers=headers,
    )


def http_error(code: str, message: str, *, hint: str | None = None, **details: Any) -> PlugbayError:
    """An error of the HTTP layer itself (auth, size, malformed body), in the same shape."""
    error = PlugbayError(message, hint=hint, details=details or None)
    error.code = code  # type: ignore[misc]
    return error
