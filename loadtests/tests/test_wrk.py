"""``lib/wrk.py``, the load generator of sections 2 and 7: what it counts is what the server answered.

A local aiohttp server answers a known mix (hits, misses, a 503 every fifth request, and 401
without the key), and wrk's counts are checked against the server's own count of what it sent.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from panorama.testing.local_site import local_site

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import wrk

pytestmark = pytest.mark.skipif(not wrk.available(), reason="wrk is not installed (apt install wrk)")


def test_wrk_counts_statuses_and_x_cache_as_the_server_sent_them() -> None:
    sent: Counter[str] = Counter()

    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("X-API-Key") != "k":
            sent["401"] += 1
            return web.Response(status=401)
        n = sum(sent.values())
        if n % 5 == 4:
            sent["503"] += 1
            return web.Response(status=503)
        cache = "hit" if n % 2 else "miss"
        sent[cache] += 1
        return web.Response(text="{}", headers={"X-Cache": cache})

    async def drive() -> tuple[dict, dict]:
        async with local_site({"/x": handler}) as base:
            keyed = await asyncio.to_thread(wrk.run, f"{base}/x", concurrency=4, seconds=1, headers={"X-API-Key": "k"})
            sent_keyed = dict(sent)
            sent.clear()
            bare = await asyncio.to_thread(wrk.run, f"{base}/x", concurrency=2, seconds=1)
        return keyed, {"sent_keyed": sent_keyed, "bare": bare, "sent_bare": dict(sent)}

    keyed, rest = asyncio.run(drive())
    sent_keyed = rest["sent_keyed"]
    # wrk stops mid-flight: requests it sent but never saw answered are not counted.
    assert 0 <= sum(sent_keyed.values()) - keyed["requests"] <= 4
    assert keyed["statuses"]["503"] >= sent_keyed["503"] - 4
    ok = keyed["statuses"]["200"]
    assert keyed["x_cache"]["hit"] + keyed["x_cache"]["miss"] == ok
    assert abs(keyed["x_cache"]["hit"] - sent_keyed["hit"]) <= 4
    assert keyed["errors"] == keyed["requests"] - ok > 0  # every 503 is an error
    assert keyed["rps"] > 0
    assert keyed["p99_ms"] >= keyed["p50_ms"] > 0
    bare = rest["bare"]
    assert set(bare["statuses"]) == {"401"}
    assert bare["rps"] == 0.0
    assert bare["errors"] == bare["requests"] > 0
