"""What the caller's token may do (the dashboard shows only that), and the operator's
"deny" to a permission diff ("approve" is a grant, ``_grants``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from plugbay.api.errors import PluginStateError, StateError
from plugbay.web._api import HostDep, errors
from plugbay.web.scopes import Access

__all__ = ["router"]

router = APIRouter(tags=["health"])


class AccessView(BaseModel):
    token: str = Field(description="The token's id ('host' for the host's own token)")
    scopes: list[str] = Field(description="read, call:ID, admin")


@router.get(
    "/api/v1/access", response_model=AccessView, responses=errors(),
    summary="The scopes of the token this request came with",
)  # fmt: skip
async def access(request: Request) -> AccessView:
    granted = getattr(request.state, "access", None)
    if not isinstance(granted, Access):  # the app served without its gate (tests)
        granted = Access("host", frozenset({"admin"}))
    return AccessView(token=granted.token_id, scopes=sorted(granted.scopes))


class Denial(BaseModel):
    permission: str = Field(
        description="A permission the plugin asks for and was not granted", max_length=500
    )


class DenialResult(BaseModel):
    plugin: str
    permission: str
    denied: bool = Field(description="Recorded: the plugin keeps running without it")


@router.post(
    "/api/v1/plugins/{plugin_id}/deny", response_model=DenialResult, tags=["grants"],
    responses=errors(400, 404, 409, 503),
    summary="Deny a permission a new version asks for: recorded, and it runs without it",
)  # fmt: skip
async def deny(plugin_id: str, body: Denial, host: HostDep) -> DenialResult:
    """The other answer to a permission diff ('approve' is a grant): nothing is granted,
    the plugin keeps running without it, and the decision is in its history."""
    info = host.info(plugin_id)
    if body.permission in info["permissions"].get("denied", []):  # denied already
        return DenialResult(plugin=plugin_id, permission=body.permission, denied=True)
    if body.permission not in info["permissions"].get("pending", []):
        raise PluginStateError(
            f"{body.permission} is not pending approval for '{plugin_id}'",
            plugin=plugin_id,
            hint=f"'plugbay info {plugin_id}' lists what it asks for and what is granted",
        )
    if host.state is None:
        raise StateError("this host keeps no history (no state directory)", plugin=plugin_id)
    host.state.add_event(plugin_id, "deny", reason=body.permission)
    return DenialResult(plugin=plugin_id, permission=body.permission, denied=True)
