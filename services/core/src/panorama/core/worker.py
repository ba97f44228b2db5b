"""The uvicorn worker every HTTP service runs under gunicorn: recycled without a gap, stopped without a reset.

``gunicorn_conf`` names it (``worker_class``); it is uvicorn-worker's ``UvicornWorker`` with two changes.

- **Replaced before it stops.** uvicorn stops a worker the moment it reaches ``max_requests``, and
  gunicorn forks the replacement only then: for the seconds the new worker spends importing the
  app (8-10 s measured on a loaded 2-core machine), the pod is a worker short, and when both
  workers reach their limits close together (§10 of ``make bench``: io's two workers stopped 1 s
  apart), nobody serves and every request in flight runs out of budget (431 x 504 in 15 s). Here a
  worker at its limit raises a flag the master shares with it (``gunicorn_conf``), keeps serving,
  and stops when the master sends SIGTERM, which it does once the replacement serves. If nobody
  stops it within the worker timeout, it stops itself as before.
- **Idle keep-alive connections are not cut under a request.** On shutdown uvicorn closes every
  idle connection at once, and a client that sent a request on one in that instant (a keep-alive
  pool reusing it, or a connection just accepted) sees a reset instead of an answer. Here an idle
  connection stays open for ``IDLE_GRACE`` seconds: a request that arrives is answered, with
  ``Connection: close``; one still idle after that is closed.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, ClassVar

from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is in every image; h11 is uvicorn's fallback
    HttpToolsProtocol = None

logger = logging.getLogger("uvicorn.error")

# Long enough for a client that already holds the connection to send on it (a keep-alive pool, the
# gateway's included, reuses a connection within milliseconds), short enough not to hold shutdown.
IDLE_GRACE = 1.0
# Values of the flag shared with the master.
SERVING, WANTS_REPLACEMENT = 0, 1


class _ClosingGently:
    """Mixin for uvicorn's HTTP protocols: the graceful shutdown above."""

    closing = False

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # type: ignore[attr-defined]
            self.closing = True
            self.loop.call_later(IDLE_GRACE, self._close_if_idle)  # type: ignore[attr-defined]
        else:
            self.cycle.keep_alive = False  # type: ignore[attr-defined]

    def _close_if_idle(self) -> None:
        cycle = self.cycle  # type: ignore[attr-defined]
        if not self.transport.is_closing() and (cycle is None or cycle.response_complete):  # type: ignore[attr-defined]
            super().shutdown()  # type: ignore[misc]

    def _answer_then_close(self) -> None:
        cycle = self.cycle  # type: ignore[attr-defined]
        if self.closing and cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False


class H11ClosingGently(_ClosingGently, H11Protocol):
    def handle_events(self) -> None:
        super().handle_events()
        self._answer_then_close()


if HttpToolsProtocol is not None:

    class HttpToolsClosingGently(_ClosingGently, HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._answer_then_close()

    HTTP_PROTOCOL: type = HttpToolsClosingGently
else:  # pragma: no cover
    HTTP_PROTOCOL = H11ClosingGently


class _RecyclingServer(Server):
    """uvicorn's server with ``max_requests`` handled as above (``limit_max_requests`` stays unset)."""

    def __init__(self, config: Any, worker: PanoramaWorker) -> None:
        super().__init__(config)
        self.worker = worker
        self.asked_at: float | None = None

    async def on_tick(self, counter: int) -> bool:
        limit = self.worker.max_requests
        if limit and self.asked_at is None and self.server_state.total_requests >= limit:
            flag = getattr(self.worker, "panorama_retire", None)
            if flag is None:  # no master to replace it (another gunicorn config): stop, as uvicorn does
                logger.info("Maximum request limit of %d exceeded. Terminating process.", limit)
                return True
            flag[0] = WANTS_REPLACEMENT
            self.asked_at = time.monotonic()
            logger.info("Maximum request limit of %d exceeded: serving until a replacement serves.", limit)
        patience = self.worker.cfg.timeout
        if self.asked_at is not None and time.monotonic() - self.asked_at > patience:
            logger.warning("no replacement within %ss of reaching the request limit: terminating", patience)
            return True
        return await super().on_tick(counter)


class PanoramaWorker(UvicornWorker):
    """``UvicornWorker`` that is replaced before it stops and closes idle connections gently."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "auto", "http": HTTP_PROTOCOL}

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        self.config.limit_max_requests = None  # counted by _RecyclingServer against self.max_requests
        server = _RecyclingServer(config=self.config, worker=self)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
