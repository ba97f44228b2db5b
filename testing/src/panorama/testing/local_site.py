"""A throwaway aiohttp server on 127.0.0.1, standing in for a downstream or for the outside world.

aiohttp comes with the gateway and io, whose tests use this; the rest of panorama.testing needs
only httpx, so this module is imported by name (``from panorama.testing.local_site import local_site``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import web

from panorama.testing import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def local_site(routes: Mapping[str, Handler], port: int | None = None) -> AsyncIterator[str]:
    """Serve GET on each path of ``routes`` at 127.0.0.1:``port`` (a free one by default); yields the base URL."""
    port = port or free_port()
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
