"""The gunicorn configuration every HTTP service runs with.

    gunicorn -c python:panorama.core.gunicorn_conf --bind 0.0.0.0:8001 'panorama.io.app:create_app()'

Workers come from ``WEB_CONCURRENCY`` or else the CPU limit (cgroup v2 ``cpu.max``, then v1, then
affinity) through :func:`panorama.core.sizing.plan`. Per-worker start-up (logging, telemetry) is
done after fork: state created in the master would be shared by every worker.
"""

from __future__ import annotations

import mmap
import os
import random
import resource
import signal
import tempfile
import time
from typing import Any

from panorama.core.settings import PanoramaSettings
from panorama.core.sizing import DEFAULT_UPSTREAM_CONNECTIONS, fds_for_upstreams

_settings = PanoramaSettings.load()
_plan = _settings.sizing()

# uvicorn-worker's UvicornWorker, replaced before it stops at max_requests (see panorama.core.worker).
worker_class = "panorama.core.worker.PanoramaWorker"
workers = _plan.workers
bind = os.environ.get("PANORAMA_BIND", "0.0.0.0:8000")
# Kubernetes sends SIGTERM after preStop; in-flight requests get this long to finish.
graceful_timeout = int(os.environ.get("PANORAMA_GRACEFUL_TIMEOUT", "25"))
timeout = int(os.environ.get("PANORAMA_WORKER_TIMEOUT", "60"))
keepalive = 5
# Recycle workers now and then (a slow leak cannot grow for ever), but rarely: at 1,500 req/s a
# worker reaches 1,000,000 requests in about 11 minutes, not the 30 s that 20,000 took. The jitter
# (half) staggers the workers; a worker at its limit is replaced before it stops, one at a time
# (_replace_workers_at_their_limit), so recycling never leaves the pod a worker short; 0 never recycles.
max_requests = int(os.environ.get("PANORAMA_MAX_REQUESTS", "1000000"))
max_requests_jitter = max_requests // 2
# The heartbeat file must live on tmpfs: the root file system is read-only in the chart.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs, not a temp file
accesslog = None
# No control socket (gunicorn 25.1+, for `gunicornc`): its default path is one per user, so make up's
# three masters would each take it from the one before, and it can change the worker count the pools
# were sized for. Signals (TTIN/TTOU, HUP, TERM) still reach the master.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Without a preStop hook (or behind a balancer that polls /readyz), SIGTERM first flips /readyz to
# 503 for this long while every request is still served, then stops gracefully. 0: stop at once.
drain_seconds = float(os.environ.get("PANORAMA_DRAIN_SECONDS", "0"))
# /metrics off the app's port: the master serves every worker's samples on its own port, so the
# public port never answers it. Workers must write their samples to files for that: multiprocess
# mode, chosen by prometheus_client when it is first imported (after fork, in each worker).
if _settings.metrics_port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="panorama-metrics-")
# One byte shared with the forked workers (anonymous shared mapping: no file, read-only root is fine).
_drain_flag = mmap.mmap(-1, 1)


def raise_open_file_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards the hard one when the plan needs more (returns soft, hard).

    Incoming and upstream sockets are file descriptors: the gateway holds its upstream pools plus one
    socket per proxied request, and io and compute take the gateway workers' pools. The soft limit is
    often 1024 while the hard one is far higher; workers inherit the master's limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft, hard


# Every HTTP service takes up to a gateway worker's pool of incoming sockets; the gateway also holds its own.
_open_files = raise_open_file_limit(max(_plan.fds_needed, fds_for_upstreams(DEFAULT_UPSTREAM_CONNECTIONS)))


def draining() -> bool:
    """True in the master and every worker once SIGTERM has started the drain."""
    return _drain_flag[0] == 1


def when_ready(server: Any) -> None:
    _retire_old_workers_only_when_new_ones_serve(server)  # also replaces workers at their request limit
    if _settings.metrics_port:
        _serve_metrics(server)
    if drain_seconds <= 0:
        return
    stop = server.handle_term

    def drain_then_stop() -> None:
        _drain_flag[0] = 1
        server.log.info("draining for %gs: /readyz answers 503, requests are still served", drain_seconds)
        time.sleep(drain_seconds)
        stop()

    # The arbiter looks its signal handlers up by name on each signal, so this one wins.
    server.handle_term = drain_then_stop


def _serve_metrics(server: Any) -> None:
    """In the master, before the first fork: a small HTTP server aggregating the workers' files."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(_settings.metrics_port, addr=_settings.metrics_addr, registry=registry)
    server.log.info("metrics on %s:%s/metrics (all workers)", _settings.metrics_addr, _settings.metrics_port)


def pre_fork(server: Any, worker: Any) -> None:
    """In the master: note the heartbeat file's time at birth (any other one means the worker serves),
    and give the worker a byte shared with the master, which it sets when it reaches its request limit."""
    worker.panorama_born = worker.tmp.last_update()
    worker.panorama_retire = mmap.mmap(-1, 1)  # anonymous and shared: the forked worker writes, we read


def worker_serves(worker: Any) -> bool:
    """The worker has sent its first heartbeat: uvicorn's first tick, after the app's start-up."""
    born = getattr(worker, "panorama_born", None)
    try:
        # notify() sets the file's time to time.monotonic(): any change from birth is a heartbeat.
        return born is None or worker.tmp.last_update() != born
    except (OSError, ValueError):  # its heartbeat file is already closed: it is on its way out
        return True


def wants_replacement(worker: Any) -> bool:
    """The worker has reached its request limit and serves on until its replacement serves."""
    flag = getattr(worker, "panorama_retire", None)
    try:
        return flag is not None and flag[0] != 0
    except ValueError:  # closed: the worker has exited
        return False


def _replace_workers_at_their_limit(server: Any) -> bool:
    """Recycling without a gap: True while a worker at its request limit is being replaced.

    gunicorn forks a replacement only after the old worker has exited, so for as long as the new one
    takes to import the app (8-10 s on a loaded 2-core machine) the pod is a worker short, or has none
    when two reach their limits together. Here the master forks the replacement first, one at a time,
    and SIGTERMs an old worker as soon as a replacement serves, so that ``num_workers`` always serve
    (the old one finishes what it has in flight meanwhile); past the worker timeout it goes anyway.
    gunicorn's own manage_workers must not run in between: it would SIGTERM the oldest worker to get
    back to the count, not the one at its limit.
    """
    workers = sorted(server.WORKERS.values(), key=lambda w: w.age)
    leaving = [w for w in workers if wants_replacement(w)]
    if not leaving:
        return False
    now = time.monotonic()
    staying = [w for w in workers if not wants_replacement(w)]
    serving = [w for w in staying if worker_serves(w)]
    untold = [w for w in leaving if not getattr(w, "panorama_told_to_go", False)]
    for worker in untold:
        worker.panorama_noticed = getattr(worker, "panorama_noticed", None) or now
    excess = len(serving) + len(untold) - server.num_workers
    for index, worker in enumerate(untold):
        if index < excess or now - worker.panorama_noticed > server.timeout:
            worker.panorama_told_to_go = True
            server.kill_worker(worker.pid, signal.SIGTERM)
    if len(staying) < server.num_workers and len(serving) == len(staying):
        # One boot at a time: a boot is CPU-heavy, and a worker at its limit still serves meanwhile.
        old = next((w for w in leaving if not getattr(w, "panorama_replaced", False)), leaving[0])
        old.panorama_replaced = True
        server.log.info("replacing worker %s (at its request limit) before it stops", old.pid)
        server.spawn_worker()
    return True


def _retire_old_workers_only_when_new_ones_serve(server: Any) -> None:
    """SIGHUP without a stall: old workers are retired once their replacements serve, not at once.

    gunicorn's reload forks the new workers and SIGTERMs the old ones in the same breath, so for
    the seconds the new ones spend importing the app and running its lifespan, nobody accepts
    (3 s of no throughput measured on io). The arbiter calls ``manage_workers`` about every second;
    while there are more workers than wanted, this keeps the old ones until every worker that would
    remain has sent its first heartbeat, or the worker timeout has passed (a new worker that never
    comes up must not keep the old ones forever).
    """
    manage, reap = server.manage_workers, server.reap_workers
    surplus_since: list[float] = []

    def manage_workers() -> None:
        if not server.LISTENERS:  # stopping: gunicorn's stop() reaps the workers, nothing is replaced
            return
        if _replace_workers_at_their_limit(server):
            return
        workers = sorted(server.WORKERS.values(), key=lambda w: w.age)
        if len(workers) > server.num_workers:
            surplus_since[:] = surplus_since or [time.monotonic()]
            staying = workers[-server.num_workers :] if server.num_workers else []
            waited = time.monotonic() - surplus_since[0]
            if not all(worker_serves(w) for w in staying) and waited < server.timeout:
                return
        else:
            surplus_since.clear()
        manage()

    def reap_workers() -> None:
        # gunicorn's reload waits for the old workers to exit, reaping every 0.1 s without managing
        # them: retire them from here as soon as the new ones serve.
        reap()
        if len(server.WORKERS) > server.num_workers:
            manage_workers()

    server.manage_workers = manage_workers
    server.reap_workers = reap_workers


def on_starting(server: Any) -> None:
    server.log.info("panorama sizing: %s", "; ".join(_plan.explanation))
    server.log.info("open-file limit: soft %s, hard %s", *_open_files)
    _reset_multiprocess_metrics()


def _reset_multiprocess_metrics() -> None:
    # Prometheus multiprocess mode: files left by a previous run would be counted again.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


def staggered_limit(age: int, worker_count: int, base: int = max_requests, jitter: int = max_requests_jitter) -> int:
    """This worker's request limit: each worker slot gets its own share of the jitter range, so the
    workers started together never reach their limits together (a random jitter can draw the same
    number for all: then every worker restarts at once and the pod serves nothing meanwhile)."""
    if base <= 0:
        return 0
    slots = max(1, worker_count)
    share = jitter // slots
    return base + (age % slots) * share + random.randint(0, max(0, share - 1))  # noqa: S311 - not security


def post_fork(server: Any, worker: Any) -> None:
    """Per-worker start-up that must not happen in the master (telemetry exporters, logging)."""
    from panorama.core.process import after_fork

    config = getattr(worker, "config", None)
    if max_requests > 0:  # panorama.core.worker counts against worker.max_requests, a plain UvicornWorker the config's
        worker.max_requests = staggered_limit(worker.age, server.num_workers)
        if config is not None and hasattr(config, "limit_max_requests"):
            config.limit_max_requests = worker.max_requests
    for sibling in server.WORKERS.values():  # their flags are the master's business, not this worker's
        if sibling is not worker and getattr(sibling, "panorama_retire", None) is not None:
            sibling.panorama_retire.close()

    # The app given on the command line is app_uri; cfg.wsgi_app is only the `wsgi_app` setting.
    after_fork(_settings, role=service_name(getattr(server.app, "app_uri", None) or server.cfg.wsgi_app))


def worker_exit(server: Any, worker: Any) -> None:
    """Flush the worker's last spans, within a bound (it runs inside the graceful timeout)."""
    from panorama.core.telemetry import shutdown_telemetry

    shutdown_telemetry()


def child_exit(server: Any, worker: Any) -> None:
    """In the master: drop a dead worker's live gauges from the multiprocess metrics, and its flag."""
    flag = getattr(worker, "panorama_retire", None)
    if flag is not None:
        flag.close()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def service_name(app_spec: str | None) -> str:
    """``panorama.io.app:create_app()`` -> ``io``: the name logs and traces carry."""
    parts = (app_spec or "").split(":")[0].split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "panorama" else "panorama"
