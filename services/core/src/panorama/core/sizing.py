"""Turn a CPU limit and a database budget into every pool size, and explain the numbers.

One pure function, used by the services at start-up, by the chart's tests (the templates apply
the same rules) and by the docs. Rules, per pod:

- HTTP workers: the CPU limit rounded half up, at least 1. Uvicorn workers are event loops, so
  one per core; the sync-era ``2 * cores + 1`` only oversubscribes a throttled pod.
- Process pool (compute): the CPU cores left per worker, at least 1, so that the pod's children
  together use the limit and no more.
- Celery concurrency (video worker): the CPU limit rounded half up, at least 1.
- Thread-limiter tokens: equal to the sync connection pool, so a ``def`` route never holds a thread
  while it waits for a connection (AnyIO's default is 40 per worker whatever the pool).
- DB connections: ``replicas * workers * (pool_size + max_overflow + sync_pool_size)`` must fit
  ``max_connections - reserved_connections``; otherwise the plan is refused, saying by how much.
  A service with no database (``database=False``) opens no connections and has no budget to fit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 5
DEFAULT_SYNC_POOL_SIZE = 10
DEFAULT_RESERVED_CONNECTIONS = 10


class PlanError(ValueError):
    """A sizing plan that cannot work, e.g. more DB connections than the server allows."""


@dataclass(frozen=True)
class Plan:
    """Pool sizes for one pod (the values are per worker process unless named ``total``)."""

    cpu_limit: float
    replicas: int
    workers: int
    process_pool_size: int
    celery_concurrency: int
    thread_tokens: int
    db_pool_size: int
    db_max_overflow: int
    sync_pool_size: int
    connections_per_worker: int
    connections_total: int
    connection_budget: int
    explanation: tuple[str, ...] = field(default=(), compare=False)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def plan(
    cpu_limit: float,
    *,
    max_connections: int = 100,
    replicas: int = 1,
    reserved_connections: int = DEFAULT_RESERVED_CONNECTIONS,
    workers: int | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    sync_pool_size: int = DEFAULT_SYNC_POOL_SIZE,
    database: bool = True,
) -> Plan:
    """Size every pool of one service pod from its CPU limit and the database's budget.

    ``replicas`` is the most pods that can run at once (the HPA's maximum, not today's count);
    ``workers`` overrides the CPU rule (``WEB_CONCURRENCY``); ``database=False`` for a service that
    opens no DB connections (its pools are then 0 and no budget applies). Raises :class:`PlanError`.
    """
    if not math.isfinite(cpu_limit) or cpu_limit <= 0:
        raise PlanError(f"cpu_limit must be a positive number of CPUs, got {cpu_limit!r}")
    if replicas < 1:
        raise PlanError(f"replicas must be at least 1, got {replicas}")
    for name, value in (
        ("pool_size", pool_size),
        ("max_overflow", max_overflow),
        ("sync_pool_size", sync_pool_size),
        ("reserved_connections", reserved_connections),
    ):
        if value < 0:
            raise PlanError(f"{name} must not be negative, got {value}")
    if pool_size < 1:
        raise PlanError("pool_size must be at least 1")

    cores = max(1, round_half_up(cpu_limit))
    why = [f"CPU limit {cpu_limit:g} -> {cores} core(s) (rounded half up, at least 1)"]
    if workers is None:
        workers = cores
        why.append(f"workers = {workers}: one event loop per core")
    else:
        if workers < 1:
            raise PlanError(f"workers must be at least 1, got {workers}")
        why.append(f"workers = {workers}: set explicitly (WEB_CONCURRENCY)")
    process_pool_size = max(1, cores // workers)
    why.append(f"process pool = {process_pool_size} per worker: {cores} core(s) // {workers} worker(s)")
    why.append(f"celery concurrency = {cores}: one ffmpeg at a time per core")
    thread_tokens = max(1, sync_pool_size)
    budget = max_connections - reserved_connections
    if database:
        why.append(f"thread tokens = {thread_tokens}: equal to the sync pool, so no thread waits for a connection")
    else:
        why.append(f"thread tokens = {thread_tokens} (PANORAMA_SYNC_POOL_SIZE); no database, so no connections")
        pool_size = max_overflow = sync_pool_size = 0

    per_worker = pool_size + max_overflow + sync_pool_size
    total = replicas * workers * per_worker
    if database:
        why.append(
            f"connections = {replicas} replica(s) x {workers} worker(s) x "
            f"({pool_size} pool + {max_overflow} overflow + {sync_pool_size} sync) = {total} "
            f"of a budget of {budget} ({max_connections} max_connections - {reserved_connections} reserved)"
        )
    if database and total > budget:
        raise PlanError(
            f"the plan needs {total} database connections but the budget is {budget} "
            f"(max_connections {max_connections} - reserved {reserved_connections}): over by "
            f"{total - budget}. Lower replicas, workers, pool_size, max_overflow or sync_pool_size, "
            f"or raise max_connections."
        )
    return Plan(
        cpu_limit=cpu_limit,
        replicas=replicas,
        workers=workers,
        process_pool_size=process_pool_size,
        celery_concurrency=cores,
        thread_tokens=thread_tokens,
        db_pool_size=pool_size,
        db_max_overflow=max_overflow,
        sync_pool_size=sync_pool_size,
        connections_per_worker=per_worker,
        connections_total=total,
        connection_budget=budget,
        explanation=tuple(why),
    )
