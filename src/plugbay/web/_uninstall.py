"""Uninstall through the running host: stop the serving version, remove installed ones."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from plugbay.web._api import HostDep, errors

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class UninstallRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    version: str | None = Field(
        default=None, max_length=200, description="This version (default: every installed one)"
    )
    purge: bool = Field(
        default=False, description="Also remove its data, kept state, config and grants"
    )


class UninstallResult(BaseModel):
    plugin: str
    versions: list[str] = Field(description="The versions removed from the store")
    stopped: bool = Field(description="Whether the serving version was stopped")
    purged: list[str] = Field(description="What --purge removed")
    remaining: list[str] = Field(description="Versions still known (another store entry, a dir)")
    data: str | None = Field(description="Where its data is kept (null when purged)")
    environments: list[str] = Field(
        description="The Python environments removed: only the removed versions used them"
    )
    freed_bytes: int = Field(
        description="Disk given back by those environments and their packages in uv's cache"
    )


@router.post(
    "/api/v1/plugins/{plugin_id}/uninstall", response_model=UninstallResult,
    responses=errors(400, 404, 409, 503),
    summary="Stop and remove installed versions; 409 naming the active plugins that need it",
)  # fmt: skip
async def uninstall(
    plugin_id: str, host: HostDep, body: UninstallRequest | None = None
) -> UninstallResult:
    body = body or UninstallRequest()
    done = await host.uninstall(plugin_id, body.version, purge=body.purge)
    return UninstallResult.model_validate(done)
