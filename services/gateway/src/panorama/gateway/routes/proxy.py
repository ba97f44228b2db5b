"""Gateway routes: outbound HTTP through io, to allow-listed hosts only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from panorama.core.contract import ProxyResult
from panorama.gateway.deps import IoDep, SettingsDep

router = APIRouter(tags=["proxy"])


@router.get(
    "/proxy",
    response_model=ProxyResult,
    responses={403: {"description": "not allow-listed or a private address"}, 504: {"description": "timed out"}},
)
async def proxy(
    url: Annotated[str, Query(min_length=1, max_length=2048, description="http(s) URL")],
    io: IoDep,
    settings: SettingsDep,
) -> Response:
    """Fetch an allow-listed URL through io; refused hosts and private addresses are 403."""
    upstream = await io.request("GET", "/proxy", params={"url": url}, timeout=settings.timeout_proxy)
    return upstream.relay(ProxyResult)
