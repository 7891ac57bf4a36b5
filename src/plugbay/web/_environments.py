"""``plugbay env gc`` through the running host: it removes the unused environments itself,
so what it runs keeps its environment and the warm zygote of a removed one stops."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from plugbay.runtime.env_cleanup import collect
from plugbay.web._api import HostDep, errors

__all__ = ["router"]

router = APIRouter(tags=["operations"])

#: an environment's key: a hash of its requirement set (``<state>/envs/<key>``)
Key = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{1,64}$")]


class GcRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    keep: list[Key] = Field(
        default_factory=list,
        max_length=10_000,
        description="Environments (keys) to keep besides those the host's plugin versions use",
    )


class GcResult(BaseModel):
    removed: list[str] = Field(description="The environments removed (paths)")
    packages: list[str] = Field(description="The packages dropped from uv's cache")
    freed_bytes: int = Field(description="Disk given back")


@router.post(
    "/api/v1/environments/gc", response_model=GcResult, responses=errors(422),
    summary="Remove the Python environments no plugin version uses, and stop their zygotes",
)  # fmt: skip
async def environments_gc(host: HostDep, body: GcRequest | None = None) -> GcResult:
    done = await collect(host, (body or GcRequest()).keep)
    return GcResult(
        removed=[str(p) for p in done.removed], packages=done.packages,
        freed_bytes=done.freed_bytes,
    )  # fmt: skip
