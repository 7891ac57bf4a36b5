"""Grants through the running host: applied at once (the plugin's worker restarts)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from plugbay.runtime.broker import HOST_PERMISSIONS
from plugbay.web._api import HostDep, errors
from plugbay.web._permission_view import PermissionView
from plugbay.web.scopes import Access

__all__ = ["router"]

router = APIRouter(tags=["grants"])


#: the forms ``plugbay grant`` accepts: anything else is refused before the host sees it
_PERMISSION = (
    r"^(subprocess|(network|read|write|env|secret):\S.*|"
    + "|".join(re.escape(p) for p in sorted(HOST_PERMISSIONS))
    + ")$"
)


class GrantChange(BaseModel):
    permission: str = Field(
        description="As the manifest asks it: network:HOST:PORT, read:PATH, write:PATH, "
        "env:NAME, secret:NAME, subprocess, host:audit-read, …",
        pattern=_PERMISSION,
    )


class GrantResult(BaseModel):
    plugin: str
    permission: str
    granted: bool = Field(description="True for a grant, False for a revoke")
    asked: bool = Field(description="Whether the plugin's manifest asks for it (else no effect)")
    restarted: bool = Field(description="Whether its worker was restarted under the new policy")
    state: str
    permissions: PermissionView = Field(
        description="The plugin's permissions after the change: asked, granted and where "
        "from, in force now and at the next start, pending, denied"
    )


@router.post(
    "/api/v1/plugins/{plugin_id}/grants", response_model=GrantResult,
    responses=errors(400, 404, 409, 503),
    summary="Grant a permission; an active plugin's worker restarts under the new policy",
)  # fmt: skip
async def grant(
    plugin_id: str, change: GrantChange, host: HostDep, request: Request
) -> GrantResult:
    done = await host.grant(plugin_id, change.permission, by=_caller(request))
    return GrantResult.model_validate(done)


@router.post(
    "/api/v1/plugins/{plugin_id}/revoke", response_model=GrantResult,
    responses=errors(400, 404, 409, 503),
    summary="Take a permission back; an active plugin's worker restarts under the new policy",
)  # fmt: skip
async def revoke(
    plugin_id: str, change: GrantChange, host: HostDep, request: Request
) -> GrantResult:
    """Refused (409), naming the file, for a grant of the host config's [policy.grants]:
    only an edit of that file takes it back."""
    done = await host.revoke(plugin_id, change.permission, by=_caller(request))
    return GrantResult.model_validate(done)


def _caller(request: Request) -> str:
    """Who made the change, as the history keeps it: the API, with which token."""
    access = getattr(request.state, "access", None)
    if not isinstance(access, Access):  # the app served without its gate (tests)
        return "the API"
    if access.token_id == "host":  # plugbay grant with a host running, the dashboard
        return "the API, with the host's token"
    return f"the API, with token {access.token_id}"
