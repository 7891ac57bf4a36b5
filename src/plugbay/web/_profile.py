"""Profiling the serving plugin through the running host (``plugbay profile ID --seconds N``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from plugbay.isolation.sampling import MAX_INTERVAL, MAX_SECONDS, MIN_INTERVAL
from plugbay.web._api import HostDep, errors

__all__ = ["router"]

router = APIRouter(tags=["plugins"])


class SamplesView(BaseModel):
    pid: int = Field(description="The process sampled: the plugin's worker, or the host (inline)")
    seconds: float
    interval: float
    samples: int = Field(description="How many times every thread's stack was read")
    elapsed: float = Field(description="Seconds the sampling took")
    frames: list[list[Any]] = Field(description="Each distinct frame: [function, file, line]")
    stacks: list[list[Any]] = Field(
        description="Each distinct stack, root first, as indices into frames, with its count: "
        "[[index, …], count]"
    )


class ProfileView(BaseModel):
    plugin: str
    profile: SamplesView


@router.post(
    "/api/v1/plugins/{plugin_id}/profile", response_model=ProfileView,
    responses=errors(400, 404, 409, 504),
    summary="Sample the stacks of the process serving the plugin for a bounded time",
)  # fmt: skip
async def profile(
    plugin_id: str,
    host: HostDep,
    seconds: Annotated[float, Query(gt=0, le=MAX_SECONDS)] = 5.0,
    interval: Annotated[float, Query(ge=MIN_INTERVAL, le=MAX_INTERVAL)] = 0.005,
) -> ProfileView:
    samples = await host.sample(plugin_id, seconds, interval)
    return ProfileView(plugin=plugin_id, profile=SamplesView.model_validate(samples))
