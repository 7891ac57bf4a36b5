"""Grants through the running host: applied at once (the plugin's worker restarts); and
every plugin's permissions at once, for an operator deciding what each may do."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from plugbay.runtime.broker import HOST_PERMISSIONS
from plugbay.runtime.permissions import every_plugin
from plugbay.web._api import HostDep, caller, errors
from plugbay.web._permission_view import PermissionView

__all__ = ["PERMISSION_PATTERN", "router"]

router = APIRouter(tags=["grants"])


#: the forms ``plugbay grant`` accepts: anything else is refused before the host sees it
PERMISSION_PATTERN = (
    r"^(subprocess|(network|read|write|env|secret):\S.*|"
    + "|".join(re.escape(p) for p in sorted(HOST_PERMISSIONS))
    + ")$"
)


class GrantChange(BaseModel):
    permission: str = Field(
        description="As the manifest asks it: network:HOST:PORT, read:PATH, write:PATH, "
        "env:NAME, secret:NAME, subprocess, host:audit-read, …",
        pattern=PERMISSION_PATTERN,
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


class PluginPermissions(BaseModel):
    id: str
    version: str | None
    state: str = Field(description="Its state now: active, disabled, on-demand, failed, …")
    permissions: PermissionView = Field(
        description="As in its detail: asked, granted and where from, in force now and at "
        "the next start, pending, denied"
    )


@router.get(
    "/api/v1/permissions", response_model=list[PluginPermissions], responses=errors(503),
    summary="Every plugin's permissions: asked, each grant and where from, in force, pending",
)  # fmt: skip
async def permissions(host: HostDep) -> list[PluginPermissions]:
    """One entry per plugin the host knows, by id; read from the state and the policy
    now, so a grant made since by another process is shown (``plugbay grants``)."""
    return [PluginPermissions.model_validate(p) for p in every_plugin(host.manager)]


@router.post(
    "/api/v1/plugins/{plugin_id}/grants", response_model=GrantResult,
    responses=errors(400, 404, 409, 503),
    summary="Grant a permission; an active plugin's worker restarts under the new policy",
)  # fmt: skip
async def grant(
    plugin_id: str, change: GrantChange, host: HostDep, request: Request
) -> GrantResult:
    done = await host.grant(plugin_id, change.permission, by=caller(request))
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
    done = await host.revoke(plugin_id, change.permission, by=caller(request))
    return GrantResult.model_validate(done)
