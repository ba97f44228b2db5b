"""One JSON log line per record, on stdout, the same in every service and process.

Every line carries ``trace_id`` and ``span_id`` (``null`` outside a span), so a log line found in
the aggregator leads to its trace, and a trace to its lines. asyncio's own reports (slow callbacks
in debug mode, never-retrieved task exceptions) go through the root logger, so the same stream.
"""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}


class TraceContextFilter(logging.Filter):
    """Adds the current span's ``trace_id``/``span_id`` (hex, as Jaeger shows them) to each record.

    A record that already has them (``extra={"trace_id": ...}``, as the blocking detector passes
    for the request it caught from another thread) keeps its own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            context = trace.get_current_span().get_span_context()
            valid = context.is_valid
            record.trace_id = format(context.trace_id, "032x") if valid else None
            record.span_id = format(context.span_id, "016x") if valid else None
        elif not hasattr(record, "span_id"):
            record.span_id = None
        return True


def configure_logging(service: str, level: str = "INFO", *, json: bool = True, access_log: bool = True) -> None:
    """Send every logger (uvicorn's, gunicorn's, celery's) through one handler on stdout, at ``level``.

    The servers' own loggers get ``level`` too: gunicorn's uvicorn worker sets uvicorn's (access
    included) to gunicorn's INFO before fork, which left one access line per request whatever
    ``PANORAMA_LOG_LEVEL`` said. Access lines are INFO; ``access_log=False`` turns them off at any level.
    """
    handler = logging.StreamHandler(sys.stdout)
    if json:
        handler.setFormatter(JsonFormatter(FORMAT, rename_fields=RENAMED, static_fields={"service": service}))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s [trace=%(trace_id)s]: %(message)s")
        )
    # On the handler, not a logger: records propagated from every logger pass through it.
    handler.addFilter(TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(level)
    access = logging.getLogger("uvicorn.access")
    # disabled: Logger.info returns at its first check, so a request pays no formatting for it.
    access.disabled = not access_log
