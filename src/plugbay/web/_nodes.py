"""Where plugins run: the cluster's nodes and the plugins placed on each (``runtime.nodes``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from plugbay.runtime.nodes import cluster_nodes
from plugbay.web._api import HostDep, errors
from plugbay.web._models import State

__all__ = ["ClusterView", "router"]

router = APIRouter(tags=["cluster"])


class ClusterInfo(BaseModel):
    backend: Literal["ray"]
    address: str = Field(description="[ray] address of the host config")
    connected: bool = Field(description="Whether the host has joined it (on its first plugin)")
    reachable: bool | None = Field(
        description="Whether its head answers (null: not joined, so not asked)"
    )
    error: str | None = Field(description="Why its head does not answer")
    head_lost_since: float | None = Field(
        description="When the host found the head gone (Unix time); its Ray plugins stopped"
    )


class PlacedPlugin(BaseModel):
    plugin: str
    version: str | None
    state: State
    mode: Literal["actor", "agent"] = Field(
        description="actor: a bare Ray actor (trusted); agent: a worker the node's agent forked"
    )
    sandboxed: bool
    how: str = Field(description="The mode in words")
    pid: int = Field(description="Its process id on its node")
    serving: bool = Field(description="Active and answering its heartbeat")
    since: float | None = Field(description="When it became active (Unix time)")


class NodeView(BaseModel):
    node: str = Field(description="The Ray node id")
    address: str | None = Field(description="The node's address (null: not in the table)")
    alive: bool | None = Field(description="As the head says; null when it cannot be asked")
    resources: dict[str, float] = Field(description="What the node offers (CPU, memory, custom)")
    labels: dict[str, str]
    plugins: list[PlacedPlugin] = Field(description="The plugins plugbay placed on it")


class UnplacedPlugin(BaseModel):
    plugin: str
    version: str | None
    state: State
    reason: str | None = Field(description="Why it is on no node now")


class ClusterView(BaseModel):
    cluster: ClusterInfo | None = Field(description="null: this host has no [ray]")
    nodes: list[NodeView]
    unplaced: list[UnplacedPlugin] = Field(
        description="Plugins placed on the cluster that run on no node now (failed, restarting)"
    )


@router.get(
    "/api/v1/nodes", response_model=ClusterView, responses=errors(),
    summary="The cluster's nodes (alive or dead, resources) and the plugins placed on each",
)  # fmt: skip
async def nodes(host: HostDep) -> ClusterView:
    """Answers within a few seconds even while the cluster's head is down (then
    ``reachable`` is false, with the reason, and the last table known is shown)."""
    return ClusterView.model_validate(await cluster_nodes(host.manager))
