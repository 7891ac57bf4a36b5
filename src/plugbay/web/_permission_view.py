"""A plugin's permissions as the API shows them (``runtime.permissions``): asked, granted
and where each grant comes from, in force now and at the next start, pending, denied."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["GrantSource", "NextStart", "PermissionView"]


class GrantSource(BaseModel):
    permission: str
    source: Literal["config", "state", "trust"] = Field(
        description="config: [policy.grants] of the host config file (only an edit of the "
        "file takes it back); state: 'plugbay grant' or this API, kept in the state "
        "database; trust: the host trusts the plugin's code (inline), which puts the host:* "
        "permissions it asks for in force"
    )
    where: str = Field(description="Where it comes from, in words")
    file: str | None = Field(description="The config file or the state database")
    by: str | None = Field(description="Who granted it (state grants), when known")
    since: float | None = Field(description="When it was granted (state grants), Unix time")
    asked: bool = Field(description="Whether the manifest asks for it (else it has no effect)")
    in_force: bool | None = Field(
        description="Whether its running worker has it; null when no worker of it runs"
    )


class NextStart(BaseModel):
    gains: list[str] = Field(
        default_factory=list, description="Granted since its worker started: in force after"
    )
    loses: list[str] = Field(
        default_factory=list, description="Revoked since its worker started: in force until"
    )


class PermissionView(BaseModel):
    asked: list[str] = Field(default_factory=list, description="What its manifest asks for")
    granted: list[str] = Field(
        default_factory=list, description="Every grant now, from any source, asked for or not"
    )
    effective: list[str] = Field(
        default_factory=list,
        description="in_force when a worker of it runs, else next_start",
    )
    in_force: list[str] | None = Field(
        None, description="In force in its running worker; null when none runs"
    )
    next_start: list[str] = Field(
        default_factory=list, description="In force at its next start or reload"
    )
    at_next_start: NextStart = Field(
        default_factory=NextStart, description="How next_start differs from in_force"
    )
    pending: list[str] = Field(
        default_factory=list, description="Asked, not granted: waiting for the operator"
    )
    denied: list[str] = Field(
        default_factory=list, description="Asked, not granted, and denied by the operator"
    )
    unasked: list[str] = Field(
        default_factory=list,
        description="Granted, not asked for by its manifest: no effect until it is",
    )
    unconfined_in: str | None = Field(
        None,
        description="Where it runs with no sandbox (trusted): inline (in the host's process), "
        "process or ray (a worker the policy does not sandbox); null when sandboxed",
    )
    unconfined: list[str] = Field(
        default_factory=list,
        description="Asked, granted by nothing, and limited by nothing all the same: "
        "network, read, write and subprocess of a plugin that runs with no sandbox",
    )
    grants: list[GrantSource] = Field(
        default_factory=list, description="Each grant and where it comes from"
    )
