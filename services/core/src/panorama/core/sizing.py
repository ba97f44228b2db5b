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
- Pool waits (io): a request waits its turn for a DB connection, first come first served (a FIFO
  queue as deep as the async pool, ``panorama.io.admission``), for as long as its budget allows
  (``X-Request-Timeout`` or io's ``request_timeout``, 5 s like the gateway's, less 0.5 s to answer),
  so a burst of cheap reads queues instead of failing; 503 only when the budget cannot be met. A
  Redis connection, and a DB checkout outside that queue, waits up to ``pool_timeout`` (3 s).
- Redis connections (io): ``redis_connections`` per worker; ``replicas * workers * redis_connections``
  must fit Redis' ``maxclients`` (10,000 by default) less a reserve, else the plan is refused.
- Upstream sockets (gateway): ``upstream_connections`` per downstream per worker (1024 by default),
  so 1000 concurrent awaits go through in one wave, not in waves of 100. Bounded by the downstream's
  own capacity (each io/compute worker takes any number of sockets, one event loop answers them, and
  the route budgets cap how long they are held), by the file-descriptor limit (each downstream's pool
  plus as many incoming sockets plus a reserve must fit ``RLIMIT_NOFILE``; gunicorn raises the soft
  limit to the hard one where needed) and by memory (an idle aiohttp socket costs a few KB: 2 x 1024
  sockets is about 10 MB per worker). More than 10,000, or more than the file-descriptor limit allows,
  is refused with a message naming ``PANORAMA_UPSTREAM_CONNECTIONS``.
"""

from __future__ import annotations

import math
import resource
from dataclasses import asdict, dataclass, field

DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 5
DEFAULT_SYNC_POOL_SIZE = 10
DEFAULT_RESERVED_CONNECTIONS = 10
DEFAULT_POOL_TIMEOUT = 3.0
DEFAULT_REDIS_CONNECTIONS = 100
DEFAULT_REDIS_MAX_CLIENTS = 10_000
DEFAULT_UPSTREAM_CONNECTIONS = 1024
MAX_UPSTREAM_CONNECTIONS = 10_000
# The gateway's downstreams (io, compute): one pool each per worker.
DOWNSTREAMS = 2
# File descriptors kept for everything but sockets: logs, the heartbeat file, uploads, Redis, imports.
FD_RESERVE = 256


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
    pool_timeout: float = DEFAULT_POOL_TIMEOUT
    redis_connections: int = DEFAULT_REDIS_CONNECTIONS
    upstream_connections: int = 0
    fds_needed: int = 0
    nofile_limit: int = field(default=0, compare=False)
    explanation: tuple[str, ...] = field(default=(), compare=False)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def nofile_hard_limit() -> int:
    """The hard RLIMIT_NOFILE of this process (what the soft limit may be raised to); 0 if unlimited."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 0 if hard == resource.RLIM_INFINITY else hard


def check_upstream_connections(connections: int, nofile_limit: int) -> None:
    """Refuse an upstream pool beyond 10,000 sockets or beyond the open-file limit, naming the variable."""
    if connections < 1 or connections > MAX_UPSTREAM_CONNECTIONS:
        raise PlanError(
            f"PANORAMA_UPSTREAM_CONNECTIONS must be between 1 and {MAX_UPSTREAM_CONNECTIONS}, got {connections}: "
            "each socket costs a file descriptor and memory, and no downstream takes more at once"
        )
    fds = fds_for_upstreams(connections)
    if nofile_limit and fds > nofile_limit:
        raise PlanError(
            f"PANORAMA_UPSTREAM_CONNECTIONS={connections} needs {fds} open files per gateway worker "
            f"({DOWNSTREAMS} downstream pools + as many incoming sockets + {FD_RESERVE} reserve) but the hard "
            f"RLIMIT_NOFILE is {nofile_limit}: lower PANORAMA_UPSTREAM_CONNECTIONS to at most "
            f"{max(1, (nofile_limit - FD_RESERVE) // (DOWNSTREAMS + 1))} or raise the limit (ulimit -Hn, LimitNOFILE)"
        )


def fds_for_upstreams(upstream_connections: int) -> int:
    """File descriptors one gateway worker may hold: each downstream's pool, as many incoming
    sockets (one per proxied request), and a reserve."""
    return (DOWNSTREAMS + 1) * upstream_connections + FD_RESERVE


def _check_inputs(
    cpu_limit: float, replicas: int, pool_size: int, max_overflow: int, sync_pool_size: int, reserved_connections: int
) -> None:
    """Refuse a CPU limit, a replica count or a pool setting that no plan can be built from."""
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


def _cores(cpu_limit: float) -> tuple[int, str]:
    """The CPU limit rounded half up, at least 1: what every per-core rule counts."""
    cores = max(1, round_half_up(cpu_limit))
    return cores, f"CPU limit {cpu_limit:g} -> {cores} core(s) (rounded half up, at least 1)"


def _workers(cores: int, workers: int | None) -> tuple[int, str]:
    """HTTP workers: one event loop per core, unless set explicitly (``WEB_CONCURRENCY``)."""
    if workers is None:
        return cores, f"workers = {cores}: one event loop per core"
    if workers < 1:
        raise PlanError(f"workers must be at least 1, got {workers}")
    return workers, f"workers = {workers}: set explicitly (WEB_CONCURRENCY)"


def _process_pool(cores: int, workers: int) -> tuple[int, str]:
    """Process-pool children per worker: the cores left per worker, at least 1."""
    size = max(1, cores // workers)
    return size, f"process pool = {size} per worker: {cores} core(s) // {workers} worker(s)"


def _celery_concurrency(cores: int) -> tuple[int, str]:
    """Celery concurrency (video worker): one ffmpeg at a time per core."""
    return cores, f"celery concurrency = {cores}: one ffmpeg at a time per core"


def _thread_tokens(sync_pool_size: int, database: bool) -> tuple[int, str]:
    """Thread-limiter tokens: the sync pool's size, so a ``def`` route never waits for a connection."""
    tokens = max(1, sync_pool_size)
    if database:
        return tokens, f"thread tokens = {tokens}: equal to the sync pool, so no thread waits for a connection"
    return tokens, f"thread tokens = {tokens} (PANORAMA_SYNC_POOL_SIZE); no database, so no connections"


def _db_connections(
    *,
    replicas: int,
    workers: int,
    pool_size: int,
    max_overflow: int,
    sync_pool_size: int,
    max_connections: int,
    reserved_connections: int,
) -> tuple[int, int, str]:
    """DB connections per worker and in all, with the line comparing them to the budget."""
    per_worker = pool_size + max_overflow + sync_pool_size
    total = replicas * workers * per_worker
    budget = max_connections - reserved_connections
    return (
        per_worker,
        total,
        (
            f"connections = {replicas} replica(s) x {workers} worker(s) x "
            f"({pool_size} pool + {max_overflow} overflow + {sync_pool_size} sync) = {total} "
            f"of a budget of {budget} ({max_connections} max_connections - {reserved_connections} reserved)"
        ),
    )


def _refuse_over_budget(total: int, max_connections: int, reserved_connections: int) -> None:
    """Refuse a plan that needs more DB connections than the server allows, saying by how much."""
    budget = max_connections - reserved_connections
    if total > budget:
        raise PlanError(
            f"the plan needs {total} database connections but the budget is {budget} "
            f"(max_connections {max_connections} - reserved {reserved_connections}): over by "
            f"{total - budget}. Lower replicas, workers, pool_size, max_overflow or sync_pool_size, "
            f"or raise max_connections."
        )


def _pool_wait(pool_timeout: float) -> str:
    """How long a request waits for a DB or Redis connection before its 503."""
    if not math.isfinite(pool_timeout) or pool_timeout <= 0:
        raise PlanError(f"pool_timeout must be a positive number of seconds, got {pool_timeout!r}")
    return (
        f"pool wait = {pool_timeout:g}s for a Redis connection; a DB connection is waited for in turn (FIFO) "
        "within the request's budget less 0.5s: a burst of reads queues instead of failing; 503 when it runs out"
    )


def _redis_connections(
    *, replicas: int, workers: int, redis_connections: int, redis_max_clients: int, reserved_connections: int
) -> str:
    """Redis connections per worker and in all; refused beyond ``maxclients`` less the reserve."""
    redis_total = replicas * workers * redis_connections
    redis_budget = redis_max_clients - reserved_connections
    if redis_connections < 1 or redis_total > redis_budget:
        raise PlanError(
            f"the plan needs {redis_total} Redis connections ({replicas} replica(s) x {workers} worker(s) x "
            f"{redis_connections}) but Redis allows {redis_budget}: lower PANORAMA_REDIS_CONNECTIONS "
            "(at least 1), workers or replicas"
        )
    return (
        f"redis connections = {redis_connections} per worker, {redis_total} in all "
        f"of Redis' {redis_max_clients} maxclients"
    )


def _upstream_sockets(upstream_connections: int | None, limit: int) -> tuple[int, list[str]]:
    """Open files one gateway worker needs for its upstream sockets (0 and no line for other services)."""
    if upstream_connections is None:
        return 0, []
    check_upstream_connections(upstream_connections, limit)
    fds = fds_for_upstreams(upstream_connections)
    megabytes = max(1, DOWNSTREAMS * upstream_connections * 5 // 1024)
    return fds, [
        f"upstream sockets = {upstream_connections} per downstream per worker: 1000 concurrent awaits "
        f"go in one wave; {fds} open files per worker of the hard limit {limit or 'unlimited'} "
        f"(gunicorn raises the soft limit to it), about {megabytes} MB "
        "of idle sockets; the downstreams' event loops take them all, the route budgets bound how long"
    ]


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
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    redis_connections: int = DEFAULT_REDIS_CONNECTIONS,
    redis_max_clients: int = DEFAULT_REDIS_MAX_CLIENTS,
    upstream_connections: int | None = None,
    nofile_limit: int | None = None,
) -> Plan:
    """Size every pool of one service pod from its CPU limit and the database's budget.

    ``replicas`` is the most pods that can run at once (the HPA's maximum, not today's count);
    ``workers`` overrides the CPU rule (``WEB_CONCURRENCY``); ``database=False`` for a service that
    opens no DB connections (its pools are then 0 and no budget applies). ``nofile_limit`` is the
    hard open-file limit (default: this process's); ``upstream_connections`` only for a service that
    pools sockets to downstreams (the gateway: ``DEFAULT_UPSTREAM_CONNECTIONS``). Raises :class:`PlanError`.
    """
    _check_inputs(cpu_limit, replicas, pool_size, max_overflow, sync_pool_size, reserved_connections)
    cores, cores_line = _cores(cpu_limit)
    workers, workers_line = _workers(cores, workers)
    process_pool_size, process_pool_line = _process_pool(cores, workers)
    celery_concurrency, celery_line = _celery_concurrency(cores)
    thread_tokens, thread_tokens_line = _thread_tokens(sync_pool_size, database)
    why = [cores_line, workers_line, process_pool_line, celery_line, thread_tokens_line]
    if not database:  # no connections of any kind, so no budget to fit
        pool_size = max_overflow = sync_pool_size = redis_connections = 0
    per_worker, total, db_line = _db_connections(
        replicas=replicas,
        workers=workers,
        pool_size=pool_size,
        max_overflow=max_overflow,
        sync_pool_size=sync_pool_size,
        max_connections=max_connections,
        reserved_connections=reserved_connections,
    )
    if database:
        why.append(db_line)
        _refuse_over_budget(total, max_connections, reserved_connections)
    pool_wait_line = _pool_wait(pool_timeout)
    if database:
        redis_line = _redis_connections(
            replicas=replicas,
            workers=workers,
            redis_connections=redis_connections,
            redis_max_clients=redis_max_clients,
            reserved_connections=reserved_connections,
        )
        why += [pool_wait_line, redis_line]
    limit = nofile_hard_limit() if nofile_limit is None else nofile_limit
    fds_needed, upstream_lines = _upstream_sockets(upstream_connections, limit)
    why += upstream_lines
    return Plan(
        cpu_limit=cpu_limit,
        replicas=replicas,
        workers=workers,
        process_pool_size=process_pool_size,
        celery_concurrency=celery_concurrency,
        thread_tokens=thread_tokens,
        db_pool_size=pool_size,
        db_max_overflow=max_overflow,
        sync_pool_size=sync_pool_size,
        connections_per_worker=per_worker,
        connections_total=total,
        connection_budget=max_connections - reserved_connections,
        pool_timeout=pool_timeout,
        redis_connections=redis_connections,
        upstream_connections=upstream_connections or 0,
        fds_needed=fds_needed,
        nofile_limit=limit,
        explanation=tuple(why),
    )
