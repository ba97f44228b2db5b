"""The compute service app: ``gunicorn ... 'panorama.compute.app:create_app()'``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from fastapi import FastAPI

from panorama.compute import tracing
from panorama.compute.child import ChildConfig
from panorama.compute.observability import wire_compute_observability
from panorama.compute.pool import ProcessPool, ThreadPool
from panorama.compute.routes import compute, debug, demo, inference
from panorama.compute.settings import ComputeSettings
from panorama.core.health import Check
from panorama.core.service import create_service_app
from panorama.core.telemetry import instrument_fastapi, telemetry_enabled

WARM_UP_TIMEOUT = 60.0


def _checks(app: FastAPI) -> Mapping[str, Check]:
    return {"process_pool": app.state.process_pool.check}


def create_app(settings: ComputeSettings | None = None) -> FastAPI:
    """Build the compute service; its pools start in the lifespan, once per worker, after fork."""
    settings = settings or ComputeSettings.load()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        plan = app.state.plan
        if settings.compute_span_file:
            tracing.export_to_file(settings.compute_span_file, "compute")
        size = plan.process_pool_size
        process_pool = ProcessPool(
            size,
            settings.max_in_flight or 2 * size,
            start_method=settings.start_method,
            retry_after=settings.retry_after,
            child=ChildConfig(
                log_level=settings.log_level,
                log_json=settings.log_json,
                model_seed=settings.model_seed,
                nice=settings.child_nice,
                span_file=str(settings.compute_span_file) if settings.compute_span_file else None,
            ),
        )
        # The thread pool gets as many threads as the worker has cores: more only queue on the GIL.
        thread_size = settings.thread_pool_size or size
        thread_pool = ThreadPool(
            thread_size, settings.max_in_flight or 2 * thread_size, retry_after=settings.retry_after
        )
        process_pool.start()
        thread_pool.start()
        app.state.process_pool = process_pool
        app.state.thread_pool = thread_pool
        wire_compute_observability(app, process_pool, thread_pool)
        try:
            await process_pool.warm_up(WARM_UP_TIMEOUT)
            yield
        finally:
            await thread_pool.shutdown()
            await process_pool.shutdown()

    app = create_service_app(service="compute", settings=settings, lifespan=lifespan, readiness_checks=_checks)
    if settings.compute_span_file and not telemetry_enabled():
        # The span-file mode (no OTLP endpoint): server spans from the global provider that the
        # lifespan installs (the proxy resolves it then), like the pool children's spans.
        from opentelemetry import trace

        instrument_fastapi(app, tracer_provider=trace.get_tracer_provider())
    app.include_router(compute.router)
    app.include_router(inference.router)
    app.include_router(debug.router)
    if settings.demo_antipatterns:
        app.include_router(demo.router)
    return app
