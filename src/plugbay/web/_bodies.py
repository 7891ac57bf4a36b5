"""A request body that is not JSON, in the same words on every route.

A body declared JSON that does not parse is the caller's broken JSON (400). A body sent
as something else (what ``curl -d`` sends without ``-H 'Content-Type: application/json'``
is ``application/x-www-form-urlencoded``) and not JSON is a 422 that says how to send it:
the FastAPI routes (``_app._validation_error``) and the command routes the gate serves
directly (``_api.call_response``, ``_batch.batch_response``) answer alike. A body that
parses as JSON is read as JSON on every route, whatever media type it was sent as
(``_app.JsonBodies`` for the FastAPI routes). Only a body that fails to parse is looked
at here: a call that succeeds never reads its headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from plugbay.api.errors import PlugbayError
from plugbay.web._errors import http_error

__all__ = ["FORM", "is_json", "media_type", "not_json", "not_sent_as_json"]

#: what curl's -d sends unless told otherwise
FORM: Final = "application/x-www-form-urlencoded"


def media_type(content_type: str) -> str:
    """A Content-Type without its parameters, lower case (``""``: none)."""
    return content_type.partition(";")[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def not_sent_as_json(sent: str, see: str) -> PlugbayError:
    """The 422 for a body that was not sent as JSON (``sent``: its media type) and is not
    JSON; ``see`` ends the hint (where the endpoint's shape is written)."""
    return http_error(
        "request_invalid",
        f"the request body is not JSON: it came as {sent or 'no Content-Type'}"
        + (" (curl -d sends that unless told otherwise)" if sent == FORM else ""),
        hint=f"send a JSON object with -H 'Content-Type: application/json'; {see}",
        errors=[{"loc": ["body"], "msg": f"a JSON object was expected, not {sent}"}],
    )


def not_json(
    headers: Mapping[str, str], why: object, hint: str, see: str
) -> tuple[PlugbayError, int]:
    """The error and status for a body of a command route that does not parse (``why``:
    the decoder's words): 400 when it was declared JSON, else :func:`not_sent_as_json`."""
    sent = media_type(headers.get("content-type", ""))
    if not is_json(sent):
        return not_sent_as_json(sent, see), 422
    return http_error("body_invalid", f"the request body is not JSON: {why}", hint=hint), 400
