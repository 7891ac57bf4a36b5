"""What the caller's token may do (the dashboard shows only that)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from plugbay.web._api import errors
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
