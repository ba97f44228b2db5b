"""CPU spent per request by each service, by the load generator and by the whole host, over one round.

Why: on a small host a throughput ratio between two paths is bounded by the CPU each path needs
per request. Section 2 compares the gateway path (gateway, io and wrk on the same cores) with io
alone (one io worker: at most one core); these figures say which bound a round ran into, instead of
leaving the reader to guess (a saturated host, a saturated worker, or neither).

A service is every process that holds its listening socket: the gunicorn master and its workers.
The load generator is what this process's waited-for children used (``RUSAGE_CHILDREN``), so a
round must wait for its generator (``subprocess.run``) and start no other child meanwhile; or,
with ``own=True``, this process itself (the aiohttp bursts of sections 1 and 1b), as ``client``.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil


def listeners(url: str) -> list[psutil.Process]:
    """The processes holding the TCP socket that listens on ``url``'s port (master and workers)."""
    port = urlsplit(url).port
    pids = {
        c.pid
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }
    if not pids:
        raise LookupError(f"no process listens on {url}")
    return [psutil.Process(pid) for pid in sorted(pids)]


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:  # a recycled worker: its time is gone with it
            continue
        total += t.user + t.system
    return total


def _children_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _host_busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


@dataclass
class Reading:
    wall: float
    services: dict[str, float]
    generator: float
    host: float


class CpuMeter:
    """``start()`` before a round, ``per_request(start, requests)`` or ``spent(start)`` after it."""

    def __init__(self, services: Mapping[str, str], *, own: bool = False) -> None:
        self.procs = {name: listeners(url) for name, url in services.items()}
        self.own = own

    def start(self) -> Reading:
        return Reading(
            time.monotonic(),
            {name: _cpu_seconds(p) for name, p in self.procs.items()},
            _cpu_seconds([psutil.Process()]) if self.own else _children_seconds(),
            _host_busy_seconds(),
        )

    def spent(self, start: Reading) -> dict[str, float]:
        """CPU seconds since ``start``: ``<service>`` each, ``client`` or ``generator``, ``host_cores_busy``."""
        end = self.start()
        out = {name: end.services[name] - start.services[name] for name in self.procs}
        out["client" if self.own else "generator"] = end.generator - start.generator
        out["host_cores_busy"] = (end.host - start.host) / max(end.wall - start.wall, 1e-9)
        return out

    def per_request(self, start: Reading, requests: int) -> dict[str, float]:
        """``cpu_us_<name>`` per request (services, then ``generator`` or ``client``) and
        ``host_cores_busy`` on average."""
        used = self.spent(start)
        n = max(requests, 1)
        out = {f"cpu_us_{k}": round(v / n * 1e6, 1) for k, v in used.items() if k != "host_cores_busy"}
        out["host_cores_busy"] = round(used["host_cores_busy"], 2)
        return out
