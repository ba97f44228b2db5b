"""Outbound HTTP through the shared session, only to allow-listed hosts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AnyHttpUrl

from panorama.core.contract import ProxyResult
from panorama.io.deps import OutboundDep

router = APIRouter(tags=["proxy"])
TargetUrl = Annotated[AnyHttpUrl, Query(description="http(s) URL on the allow-list")]


@router.get(
    "/proxy",
    responses={
        403: {"description": "host not allow-listed, or a private address"},
        502: {"description": "the target failed"},
        504: {"description": "the target did not answer in time"},
    },
)
async def proxy(
    url: Annotated[AnyHttpUrl, Query(description="http(s) URL on the allow-list")], client: OutboundDep
) -> ProxyResult:
    """GET an allow-listed URL; its status, content type and (capped) body come back as JSON."""
    return ProxyResult(**await client.fetch(str(url)))
